namespace ViTScratch.Training.Data;

/// <summary>
/// The last per-sample step: uint8 CHW → normalised float CHW, fused with the random crop and
/// the horizontal flip so each output value is written exactly once.
///
/// Random crop with zero padding P (torchvision RandomCrop(size, padding=P) then
/// RandomHorizontalFlip): conceptually pad the image with P black pixels on every side, take
/// an H×W window at offset (dx, dy) ∈ [0, 2P]², then mirror it if flipping. Fused: output
/// (y, x) reads source (y + dy − P, x' + dx − P) with x' = W−1−x when flipped; reads that fall
/// in the padding see pixel value 0, which normalises to −mean/std like a padded black pixel does.
/// </summary>
internal static class SampleTransforms
{
    /// <summary>Per-channel affine normalisation: out = pixel·Scale[c] + Bias[c].</summary>
    public static (float[] Scale, float[] Bias) NormalisationFor(IReadOnlyList<float> mean, IReadOnlyList<float> std, bool normalise)
    {
        int c = mean.Count;
        var scale = new float[c];
        var bias = new float[c];
        for (int i = 0; i < c; i++)
        {
            // (v/255 − mean) / std, or v/255 alone when normalisation is off.
            scale[i] = normalise ? 1f / (255f * std[i]) : 1f / 255f;
            bias[i] = normalise ? -mean[i] / std[i] : 0f;
        }
        return (scale, bias);
    }

    /// <summary>
    /// Writes the cropped, optionally flipped, normalised image into <paramref name="output"/>
    /// (C·H·W floats). <paramref name="dx"/>, <paramref name="dy"/> are window offsets in [0, 2·padding].
    /// </summary>
    public static void CropFlipNormalise(ReadOnlySpan<byte> image, Span<float> output, int channels, int height, int width,
        int padding, int dx, int dy, bool flip, ReadOnlySpan<float> scale, ReadOnlySpan<float> bias)
    {
        int plane = height * width;
        int shiftX = dx - padding, shiftY = dy - padding;
        for (int c = 0; c < channels; c++)
        {
            var src = image.Slice(c * plane, plane);
            var dst = output.Slice(c * plane, plane);
            float s = scale[c], b = bias[c];
            for (int y = 0; y < height; y++)
            {
                int sy = y + shiftY;
                var row = dst.Slice(y * width, width);
                if ((uint)sy >= (uint)height) { row.Fill(b); continue; }
                var srcRow = src.Slice(sy * width, width);
                for (int x = 0; x < width; x++)
                {
                    int sx = (flip ? width - 1 - x : x) + shiftX;
                    row[x] = (uint)sx < (uint)width ? srcRow[sx] * s + b : b;
                }
            }
        }
    }

    /// <summary>
    /// Mirrors images left-right: every row of <paramref name="width"/> values of
    /// <paramref name="images"/> (any number of images and channels, rows back to back) is written
    /// reversed into <paramref name="output"/>. The flip of test-time augmentation.
    /// </summary>
    public static void MirrorLeftRight(ReadOnlySpan<float> images, Span<float> output, int width)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        if (output.Length != images.Length || images.Length % width != 0)
            throw new ArgumentException($"{images.Length} values into {output.Length} are not whole rows of {width}");
        for (int row = 0; row < images.Length; row += width)
        {
            images.Slice(row, width).CopyTo(output.Slice(row, width));
            output.Slice(row, width).Reverse();
        }
    }
}
