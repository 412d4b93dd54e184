namespace ViTScratch.Kernels;

/// <summary>Small pure functions shared by the CPU and GPU kernels, so both compute the same bits.</summary>
internal static class KernelMath
{
    /// <summary>
    /// Dropout keeps element <paramref name="index"/> when a counter-based hash of (seed, index) is
    /// at least p. A hash rather than a stateful RNG means the backward pass regenerates the mask
    /// instead of storing it, and every backend, CPU or GPU, draws the very same mask.
    /// </summary>
    public static bool DropoutKeep(uint seed, uint index, float p)
    {
        uint h = Mix(index * 0x9E3779B9u ^ Mix(seed + 0x7F4A7C15u));
        float u = (h >> 8) * (1.0f / 16777216.0f); // 24 random bits -> [0, 1)
        return u >= p;
    }

    /// <summary>
    /// Where image element (b, ch, y, x) of [B, C, H, W] lands in the patch matrix
    /// [B, (H/p)(W/p), p·p·C]: token gy·(W/p) + gx, then (row in patch, column in patch, channel),
    /// as vit-pytorch's Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)').
    /// </summary>
    public static int PatchIndex(int b, int ch, int y, int x, int c, int h, int w, int p)
    {
        int gw = w / p, n = h / p * gw, gy = y / p, gx = x / p;
        return (b * n + gy * gw + gx) * (p * p * c) + ((y - gy * p) * p + (x - gx * p)) * c + ch;
    }

    /// <summary>A 32-bit integer finaliser (lowbias32): every input bit affects every output bit.</summary>
    public static uint Mix(uint x)
    {
        x ^= x >> 16;
        x *= 0x7FEB352Du;
        x ^= x >> 15;
        x *= 0x846CA68Bu;
        x ^= x >> 16;
        return x;
    }

    /// <summary>
    /// Gradient clipping factor min(1, maxNorm / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_.
    /// maxNorm &lt;= 0 disables clipping.
    /// </summary>
    public static float ClipFactor(float normSquared, float maxNorm)
    {
        if (maxNorm <= 0f) return 1f;
        float f = maxNorm / (MathF.Sqrt(normSquared) + 1e-6f);
        return f < 1f ? f : 1f;
    }
}
