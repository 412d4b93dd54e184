namespace ViTScratch.Training.Data;

/// <summary>The RandAugment operations, as in the paper's list (Cubuk et al. 2019) minus Cutout.</summary>
#pragma warning disable CS1591 // the members are the RandAugment paper's op names, one per transform below
public enum RandAugmentOp
{
    Identity, AutoContrast, Equalize, Rotate, Solarize, Color, Posterize,
    Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY,
}
#pragma warning restore CS1591

/// <summary>
/// RandAugment on one uint8 CHW image: N operations drawn uniformly (with replacement) from
/// <see cref="RandAugmentOp"/>, each applied at a shared magnitude M.
///
/// Magnitude scale follows timm's "rand-mM-nN": M in [0, 10], m = M/10. At m = 1:
/// rotate ±30°, shear ±0.3, translate ±45% of the side, brightness/color/contrast/sharpness
/// factor 1 ± 0.9, posterize to 4 bits, solarize threshold 0 (everything inverted). Signed ops
/// pick their sign at random. Geometric ops sample nearest-neighbour (like PIL's default in
/// torchvision's RandAugment) about the image centre and fill uncovered pixels with 0.
/// Photometric ops follow PIL's ImageEnhance / ImageOps definitions (blend with a "degenerate"
/// image, rounding to nearest and clamping to 0..255). Grayscale images (C = 1) make Color a no-op.
///
/// Work is O(C·H·W) per op with one scratch image; nothing is allocated.
/// </summary>
internal static class RandAugment
{
    public static readonly int OpCount = Enum.GetValues<RandAugmentOp>().Length;

    /// <summary>Applies <paramref name="numOps"/> random ops at magnitude <paramref name="magnitude"/> (0..10).</summary>
    public static void Apply(Span<byte> image, Span<byte> scratch, int channels, int height, int width,
        int numOps, float magnitude, ref DataRandom rng)
    {
        float m = Math.Clamp(magnitude / 10f, 0f, 1f);
        for (int k = 0; k < numOps; k++)
        {
            var op = (RandAugmentOp)rng.NextInt(OpCount);
            bool negate = rng.NextBool();
            ApplyOp(op, image, scratch, channels, height, width, m, negate);
        }
    }

    /// <summary>One op at normalised magnitude <paramref name="m"/> in [0, 1]; <paramref name="negate"/> flips the sign of signed ops.</summary>
    public static void ApplyOp(RandAugmentOp op, Span<byte> image, Span<byte> scratch, int channels, int height, int width,
        float m, bool negate)
    {
        int plane = height * width;
        if (image.Length != channels * plane || scratch.Length < image.Length)
            throw new ArgumentException("image must be C*H*W bytes and scratch at least as long.");
        float sign = negate ? -1f : 1f;
        float factor = 1f + sign * 0.9f * m; // enhance factor in [0.1, 1.9]
        switch (op)
        {
            case RandAugmentOp.Identity: break;
            case RandAugmentOp.AutoContrast: AutoContrast(image, channels, plane); break;
            case RandAugmentOp.Equalize: Equalize(image, channels, plane); break;
            case RandAugmentOp.Solarize: Solarize(image, (int)MathF.Round(256f * (1f - m))); break;
            case RandAugmentOp.Posterize: Posterize(image, 8 - (int)MathF.Round(4f * m)); break;
            case RandAugmentOp.Brightness: Blend(image, 0f, factor); break;
            case RandAugmentOp.Color: Color(image, channels, plane, factor); break;
            case RandAugmentOp.Contrast: Blend(image, GrayMean(image, channels, plane), factor); break;
            case RandAugmentOp.Sharpness: Sharpness(image, scratch, channels, height, width, factor); break;
            case RandAugmentOp.Rotate:
            {
                float a = sign * 30f * m * MathF.PI / 180f, c = MathF.Cos(a), s = MathF.Sin(a);
                Affine(image, scratch, channels, height, width, c, s, -s, c, 0, 0);
                break;
            }
            case RandAugmentOp.ShearX: Affine(image, scratch, channels, height, width, 1, sign * 0.3f * m, 0, 1, 0, 0); break;
            case RandAugmentOp.ShearY: Affine(image, scratch, channels, height, width, 1, 0, sign * 0.3f * m, 1, 0, 0); break;
            case RandAugmentOp.TranslateX: Affine(image, scratch, channels, height, width, 1, 0, 0, 1, -sign * 0.45f * m * width, 0); break;
            case RandAugmentOp.TranslateY: Affine(image, scratch, channels, height, width, 1, 0, 0, 1, 0, -sign * 0.45f * m * height); break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    /// <summary>
    /// Inverse-mapped affine warp: output pixel centre p (relative to the image centre) samples the
    /// source at [a b; c d]·p + centre + (tx, ty), nearest neighbour, 0 outside. Inverse mapping
    /// (rather than pushing source pixels forward) leaves no holes.
    /// </summary>
    private static void Affine(Span<byte> image, Span<byte> scratch, int channels, int height, int width,
        float a, float b, float c, float d, float tx, float ty)
    {
        int plane = height * width;
        image.CopyTo(scratch);
        float cx = width * 0.5f, cy = height * 0.5f;
        for (int y = 0; y < height; y++)
        {
            float py = y + 0.5f - cy;
            for (int x = 0; x < width; x++)
            {
                float px = x + 0.5f - cx;
                int sx = (int)MathF.Floor(a * px + b * py + cx + tx);
                int sy = (int)MathF.Floor(c * px + d * py + cy + ty);
                bool inside = (uint)sx < (uint)width && (uint)sy < (uint)height;
                int src = sy * width + sx, dst = y * width + x;
                for (int ch = 0; ch < channels; ch++)
                    image[ch * plane + dst] = inside ? scratch[ch * plane + src] : (byte)0;
            }
        }
    }

    private static byte Clamp(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);

    /// <summary>PIL's ImageEnhance blend: degenerate + factor·(image − degenerate).</summary>
    private static void Blend(Span<byte> image, float degenerate, float factor)
    {
        for (int i = 0; i < image.Length; i++)
            image[i] = Clamp(degenerate + factor * (image[i] - degenerate));
    }

    /// <summary>ITU-R 601 luma (PIL's "L" conversion) of pixel i; the channel itself for grayscale.</summary>
    private static float Luma(ReadOnlySpan<byte> image, int channels, int plane, int i) =>
        channels == 3 ? (299f * image[i] + 587f * image[plane + i] + 114f * image[2 * plane + i]) / 1000f : image[i];

    private static float GrayMean(ReadOnlySpan<byte> image, int channels, int plane)
    {
        double sum = 0;
        for (int i = 0; i < plane; i++) sum += Luma(image, channels, plane, i);
        return MathF.Round((float)(sum / plane)); // PIL uses the integer mean of the L histogram
    }

    /// <summary>Saturation: blend each pixel with its own gray value.</summary>
    private static void Color(Span<byte> image, int channels, int plane, float factor)
    {
        if (channels != 3) return;
        for (int i = 0; i < plane; i++)
        {
            float g = Luma(image, channels, plane, i);
            for (int ch = 0; ch < 3; ch++)
                image[ch * plane + i] = Clamp(g + factor * (image[ch * plane + i] - g));
        }
    }

    /// <summary>PIL's SHARPEN-style degenerate: 3x3 smoothing [1 1 1; 1 5 1; 1 1 1]/13 inside, border pixels unchanged.</summary>
    private static void Sharpness(Span<byte> image, Span<byte> scratch, int channels, int height, int width, float factor)
    {
        int plane = height * width;
        image.CopyTo(scratch);
        for (int ch = 0; ch < channels; ch++)
        {
            var src = scratch.Slice(ch * plane, plane);
            var dst = image.Slice(ch * plane, plane);
            for (int y = 1; y < height - 1; y++)
                for (int x = 1; x < width - 1; x++)
                {
                    int i = y * width + x;
                    int sum = 4 * src[i];
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++)
                            sum += src[i + dy * width + dx];
                    float smooth = MathF.Round(sum / 13f);
                    dst[i] = Clamp(smooth + factor * (src[i] - smooth));
                }
        }
    }

    private static void Solarize(Span<byte> image, int threshold)
    {
        for (int i = 0; i < image.Length; i++)
            if (image[i] >= threshold) image[i] = (byte)(255 - image[i]);
    }

    private static void Posterize(Span<byte> image, int bits)
    {
        byte mask = (byte)(0xFF << (8 - Math.Clamp(bits, 1, 8)));
        for (int i = 0; i < image.Length; i++) image[i] &= mask;
    }

    /// <summary>Per channel, stretch [min, max] linearly onto [0, 255]; flat channels are left alone.</summary>
    private static void AutoContrast(Span<byte> image, int channels, int plane)
    {
        for (int ch = 0; ch < channels; ch++)
        {
            var p = image.Slice(ch * plane, plane);
            int lo = 255, hi = 0;
            foreach (byte v in p) { if (v < lo) lo = v; if (v > hi) hi = v; }
            if (hi <= lo) continue;
            float scale = 255f / (hi - lo);
            for (int i = 0; i < p.Length; i++) p[i] = Clamp((p[i] - lo) * scale);
        }
    }

    /// <summary>
    /// PIL's ImageOps.equalize per channel: step = (pixels not in the last occupied bin) / 255,
    /// lut[v] = (pixels below v + step/2) / step. A channel with a single occupied bin is unchanged.
    /// </summary>
    private static void Equalize(Span<byte> image, int channels, int plane)
    {
        Span<int> hist = stackalloc int[256];
        Span<byte> lut = stackalloc byte[256];
        for (int ch = 0; ch < channels; ch++)
        {
            var p = image.Slice(ch * plane, plane);
            hist.Clear();
            foreach (byte v in p) hist[v]++;
            int last = 255;
            while (hist[last] == 0) last--;
            int step = (plane - hist[last]) / 255;
            if (step == 0) continue;
            int n = step / 2;
            for (int v = 0; v < 256; v++)
            {
                lut[v] = (byte)Math.Min(n / step, 255);
                n += hist[v];
            }
            for (int i = 0; i < p.Length; i++) p[i] = lut[p[i]];
        }
    }
}
