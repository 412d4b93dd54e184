namespace ViTScratch.Training.Data;

/// <summary>
/// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on a whole normalised batch.
///
/// Pairing: sample i is mixed with sample n−1−i (the batch reversed), as timm does. Both members
/// of a pair are updated in one pass, in place, so no second batch buffer is needed; with an odd
/// batch size the middle sample pairs with itself and is unchanged (its two labels agree).
/// The loss is then λ·CE(logits, LabelsA) + (1−λ)·CE(logits, LabelsB), LabelsB[i] = LabelsA[n−1−i].
///
/// Mixup: λ ~ Beta(α, α); x_i ← λ·x_i + (1−λ)·x_{n−1−i}.
/// CutMix: λ ~ Beta(α, α); a box of side ratio √(1−λ) centred uniformly at random (clipped to the
/// image) is swapped between the pair; λ is then corrected to the exact uncovered area fraction.
/// </summary>
internal static class BatchMixing
{
    public static float Mixup(Span<float> images, int count, int imageSize, float lambda)
    {
        for (int i = 0, j = count - 1; i < j; i++, j--)
        {
            var a = images.Slice(i * imageSize, imageSize);
            var b = images.Slice(j * imageSize, imageSize);
            float mu = 1f - lambda;
            for (int k = 0; k < imageSize; k++)
            {
                float va = a[k], vb = b[k];
                a[k] = lambda * va + mu * vb;
                b[k] = lambda * vb + mu * va;
            }
        }
        return lambda;
    }

    /// <summary>The clipped CutMix box [x0, x1) × [y0, y1) for a target λ and a centre (cx, cy).</summary>
    public static (int X0, int Y0, int X1, int Y1) CutMixBox(int height, int width, double lambda, int cx, int cy)
    {
        double ratio = Math.Sqrt(1.0 - lambda);
        int cw = (int)(width * ratio), chh = (int)(height * ratio);
        int x0 = Math.Clamp(cx - cw / 2, 0, width), x1 = Math.Clamp(cx + cw / 2, 0, width);
        int y0 = Math.Clamp(cy - chh / 2, 0, height), y1 = Math.Clamp(cy + chh / 2, 0, height);
        return (x0, y0, x1, y1);
    }

    /// <summary>Swaps the box between each pair; returns the corrected λ (fraction of each image that stays its own).</summary>
    public static float CutMix(Span<float> images, int count, int channels, int height, int width, (int X0, int Y0, int X1, int Y1) box)
    {
        int plane = height * width, imageSize = channels * plane;
        int bw = box.X1 - box.X0, bh = box.Y1 - box.Y0;
        for (int i = 0, j = count - 1; i < j; i++, j--)
            for (int c = 0; c < channels; c++)
                for (int y = box.Y0; y < box.Y1; y++)
                {
                    var a = images.Slice(i * imageSize + c * plane + y * width + box.X0, bw);
                    var b = images.Slice(j * imageSize + c * plane + y * width + box.X0, bw);
                    for (int k = 0; k < bw; k++) (a[k], b[k]) = (b[k], a[k]);
                }
        return 1f - (float)(bw * bh) / plane;
    }
}
