using System.Globalization;
using SkiaSharp;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>
/// `vit predict`: the top-5 classes of one image (a PNG/JPEG file, or an index into the test set),
/// and optionally the attention rollout (Abnar and Zuidema, 2020) drawn over the image.
/// </summary>
public static class PredictCommand
{
    public const string Help = """
        vit predict --checkpoint FILE (IMAGE.png|IMAGE.jpg | --index N) [--attention-map OUT.png] [--data DIR] [--device NAME]
          IMAGE is resized to the model's input size (and made grey for 1-channel models);
          --index N takes test image N of the dataset the checkpoint was trained on.
          --max-pixels N  refuse larger images before decoding them (default 100000000)
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new ArgParser("predict", args);
        string path = a.Required("checkpoint", "the .safetensors file of a trained model");
        string? indexFlag = a.Optional("index");
        string? mapPath = a.Optional("attention-map");
        string? dataDir = a.Optional("data");
        string deviceName = a.Choice("device", "auto", "auto", "cpu", "cuda", "ilgpu-cpu");
        string? maxPixelsFlag = a.Optional("max-pixels");
        long maxPixels = ImageFiles.DefaultMaxPixels;
        if (maxPixelsFlag is not null && (!long.TryParse(maxPixelsFlag, NumberStyles.None, CultureInfo.InvariantCulture, out maxPixels) || maxPixels < 1))
            throw new ViTScratchException($"vit predict: --max-pixels expects a whole number of pixels of at least 1, got '{maxPixelsFlag}'");
        a.RejectUnknown(maxPositional: 1);
        if ((indexFlag is null) == (a.Positional.Count == 0))
            throw new ViTScratchException("vit predict: give either an image file or --index N (one of them)");

        var file = TrainingCheckpoint.Read(path);
        using var device = Device.Create(deviceName);
        var model = TrainingCheckpoint.LoadModel(file, path, device);
        var cfg = model.Config;
        // Class names and normalisation from the checkpoint (any dataset, image folders too); older
        // checkpoints fall back to the built-in dataset they name.
        var info = DataDescription.FromMetadata(file.Metadata, path) ?? DataDescription.Of(DatasetCatalog.Info(EvalCommand.DatasetOf(file, path)));
        if (info.Channels != cfg.Channels || info.ImageSize != cfg.ImageSize || info.ClassNames.Length != cfg.NumClasses)
            throw new ViTScratchException($"checkpoint '{path}' expects {cfg.ImageSize}x{cfg.ImageSize}x{cfg.Channels} images and {cfg.NumClasses} classes " +
                $"but its data ({info.Dataset}) has {info.ImageSize}x{info.ImageSize}x{info.Channels} and {info.ClassNames.Length}; the file is inconsistent");

        byte[] pixels; // CHW, uint8
        string what;
        if (indexFlag is not null)
        {
            if (!int.TryParse(indexFlag, out int index) || index < 0)
                throw new ViTScratchException($"vit predict: --index expects a non-negative whole number, got '{indexFlag}'");
            var test = EvalCommand.LoadTestSplit(file, path, null, dataDir, download: false, stdout);
            if (index >= test.Count) throw new ViTScratchException($"vit predict: --index {index} is past the end of the {test.Count}-image test set");
            pixels = test.Image(index).ToArray();
            what = $"test image {index} (label: {test.ClassNames[test.Labels[index]]})";
        }
        else
        {
            what = a.Positional[0];
            pixels = ImageFiles.LoadChw(what, cfg.Channels, cfg.ImageSize, maxPixels);
        }

        var input = new float[pixels.Length];
        int plane = cfg.ImageSize * cfg.ImageSize;
        for (int i = 0; i < input.Length; i++)
        {
            int ch = i / plane;
            input[i] = (pixels[i] / 255f - info.Mean[ch]) / info.Std[ch];
        }

        model.Eval();
        model.CaptureAttention = mapPath is not null;
        float[] logits;
        using (Tensor.NoGrad())
            logits = model.Forward(Tensor.FromArray(device, input, 1, cfg.Channels, cfg.ImageSize, cfg.ImageSize)).ToArray();

        var probs = Softmax(logits);
        stdout.WriteLine($"{what}:");
        foreach (var (p, c) in probs.Select((p, c) => (p, c)).OrderByDescending(t => t.p).Take(5))
            stdout.WriteLine($"  {p * 100,6:F2}%  {info.ClassNames[c]}");

        if (mapPath is not null)
        {
            var rollout = AttentionRollout.Compute(model.AttentionMaps, cfg.Pool == Pooling.Cls);
            ImageFiles.SaveHeatmap(mapPath, pixels, cfg.Channels, cfg.ImageSize, rollout, cfg.ImageSize / cfg.PatchSize);
            stdout.WriteLine($"attention rollout written to {mapPath}");
        }
        return 0;
    }

    private static double[] Softmax(float[] z)
    {
        double max = z.Max();
        var e = z.Select(v => Math.Exp(v - max)).ToArray();
        double s = e.Sum();
        return e.Select(v => v / s).ToArray();
    }
}

/// <summary>
/// Attention rollout: average each layer's weights over heads, add the identity for the residual
/// path, renormalise rows, and multiply the layers together; the row of the cls token (or the
/// mean of all rows for mean pooling) says how much each patch reached the output.
/// </summary>
public static class AttentionRollout
{
    public static double[] Compute(IReadOnlyList<AttentionMap> layers, bool clsPooling)
    {
        int heads = layers[0].Shape[1], n = layers[0].Shape[2];
        var rollout = Identity(n);
        foreach (var layer in layers)
        {
            var a = new double[n, n];
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                        a[i, j] += layer.Weights[(h * n + i) * n + j] / heads;
            for (int i = 0; i < n; i++)
            {
                a[i, i] += 1;
                double s = 0;
                for (int j = 0; j < n; j++) s += a[i, j];
                for (int j = 0; j < n; j++) a[i, j] /= s;
            }
            rollout = Multiply(a, rollout);
        }
        var patches = new double[n - 1];
        for (int j = 1; j < n; j++)
        {
            if (clsPooling) patches[j - 1] = rollout[0, j];
            else { for (int i = 0; i < n; i++) patches[j - 1] += rollout[i, j] / n; }
        }
        double max = patches.Max(), min = patches.Min();
        return patches.Select(v => max > min ? (v - min) / (max - min) : 0).ToArray();
    }

    private static double[,] Identity(int n)
    {
        var m = new double[n, n];
        for (int i = 0; i < n; i++) m[i, i] = 1;
        return m;
    }

    private static double[,] Multiply(double[,] a, double[,] b)
    {
        int n = a.GetLength(0);
        var c = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++)
                for (int j = 0; j < n; j++)
                    c[i, j] += a[i, k] * b[k, j];
        return c;
    }
}

/// <summary>Image files in and out through SkiaSharp (PNG, JPEG, BMP, and what else Skia decodes).</summary>
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

    /// <summary>Writes the image (scaled up) with the patch heat map blended over it, as a PNG.</summary>
    public static void SaveHeatmap(string path, byte[] chw, int channels, int size, double[] heat, int grid)
    {
        const int Scale = 8;
        int outSize = size * Scale;
        using var bmp = new SKBitmap(outSize * 2, outSize);
        for (int y = 0; y < outSize; y++)
            for (int x = 0; x < outSize; x++)
            {
                int sx = x / Scale, sy = y / Scale;
                byte r = chw[sy * size + sx];
                byte g = channels == 3 ? chw[size * size + sy * size + sx] : r;
                byte b = channels == 3 ? chw[2 * size * size + sy * size + sx] : r;
                bmp.SetPixel(x, y, new SKColor(r, g, b));
                double h = heat[(sy * grid / size) * grid + sx * grid / size];
                var (hr, hg, hb) = Inferno(h);
                bmp.SetPixel(outSize + x, y, new SKColor((byte)(0.45 * r + 0.55 * hr), (byte)(0.45 * g + 0.55 * hg), (byte)(0.45 * b + 0.55 * hb)));
            }
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.Write(path, s => data.SaveTo(s));
    }

    // A small dark-to-bright colour ramp (black → purple → orange → yellow).
    private static (double, double, double) Inferno(double t)
    {
        t = Math.Clamp(t, 0, 1);
        return (255 * Math.Min(1, 1.6 * t), 255 * Math.Clamp(1.8 * t - 0.6, 0, 1), 255 * Math.Clamp(t < 0.5 ? 1.2 * t : 1.6 - 1.6 * t, 0, 1));
    }
}
