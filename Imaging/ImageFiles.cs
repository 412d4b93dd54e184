using SkiaSharp;

namespace ViTScratch.Imaging;

/// <summary>
/// Image files decoded through SkiaSharp (PNG, JPEG, BMP, and what else Skia decodes). An image
/// folder dataset (ViTScratch.Training) finds <see cref="LoadChw"/> here when this package is referenced.
/// </summary>
public static class ImageFiles
{
    /// <summary>Largest image decoded unless told otherwise (`--max-pixels`): 100 megapixels, 400 MB decoded.</summary>
    public const long DefaultMaxPixels = 100_000_000;

    /// <summary>
    /// Decodes an image and returns it as CHW uint8 of size x size with the given channel count:
    /// scaled so its shorter side is <paramref name="size"/>, then the centre square cut out (the
    /// aspect ratio is kept; torchvision's Resize(size) + CenterCrop(size)). The filter is bilinear
    /// with linear mipmaps (trilinear), so shrinking a large photo averages areas instead of
    /// aliasing. One channel is the luma 0.299 R + 0.587 G + 0.114 B; transparency is ignored.
    /// The header's width x height is checked against <paramref name="maxPixels"/> before any pixel
    /// is decoded (a small file can claim a huge image), and a file whose data ends early or is
    /// corrupt is an error rather than an image with blank rows.
    /// </summary>
    public static byte[] LoadChw(string path, int channels, int size, long maxPixels = DefaultMaxPixels)
    {
        if (!File.Exists(path)) throw new ViTScratchException($"image '{path}' does not exist");
        using var decoded = Decode(path, maxPixels);
        double scale = (double)size / Math.Min(decoded.Width, decoded.Height);
        int rw = Math.Max(size, (int)Math.Round(decoded.Width * scale)), rh = Math.Max(size, (int)Math.Round(decoded.Height * scale));
        using var resized = decoded.Resize(new SKImageInfo(rw, rh, SKColorType.Rgba8888, SKAlphaType.Unpremul),
            new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear))
            ?? throw new ViTScratchException($"image '{path}' could not be resized to {rw}x{rh}");
        ReadOnlySpan<byte> rgba = resized.GetPixelSpan();
        int x0 = (rw - size) / 2, y0 = (rh - size) / 2, plane = size * size;
        var result = new byte[channels * plane];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                int at = (y0 + y) * resized.RowBytes + (x0 + x) * 4;
                byte r = rgba[at], g = rgba[at + 1], b = rgba[at + 2];
                if (channels == 1) result[y * size + x] = (byte)Math.Round(0.299 * r + 0.587 * g + 0.114 * b);
                else
                {
                    result[y * size + x] = r;
                    result[plane + y * size + x] = g;
                    result[2 * plane + y * size + x] = b;
                }
            }
        return result;
    }

    private static SKBitmap Decode(string path, long maxPixels)
    {
        using var codec = SKCodec.Create(path, out var opened)
            ?? throw new ViTScratchException($"'{path}' is not an image SkiaSharp can read ({opened}); use PNG or JPEG");
        long pixels = (long)codec.Info.Width * codec.Info.Height;
        if (pixels > maxPixels)
            throw new ViTScratchException($"image '{path}' is {codec.Info.Width}x{codec.Info.Height} = {pixels} pixels, more than the limit of {maxPixels}; " +
                "shrink it first, or raise the limit with --max-pixels N");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888,
            codec.Info.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var bitmap = new SKBitmap();
        if (!bitmap.TryAllocPixels(info))
        {
            bitmap.Dispose();
            throw new ViTScratchException($"image '{path}' is {codec.Info.Width}x{codec.Info.Height}, too large to decode in the memory available");
        }
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new ViTScratchException(result == SKCodecResult.IncompleteInput
                ? $"image '{path}' is truncated: its data ends before the last row; copy the complete file"
                : $"image '{path}' could not be decoded ({result}); the file is corrupt or not a PNG/JPEG SkiaSharp supports");
        }
        return bitmap;
    }
}
