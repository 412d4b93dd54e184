namespace ViTScratch.Kernels;

/// <summary>Index map of <see cref="IKernels.CopyStrided"/>: three outer loops and a contiguous inner run.</summary>
public readonly record struct StridedCopy(
    int N0, int N1, int N2, int Inner,
    int SrcOffset, int S0, int S1, int S2,
    int DstOffset, int D0, int D1, int D2)
{
    public long Count => (long)N0 * N1 * N2 * Inner;
}

/// <summary>Shape of a (batched) matmul C[M, N] = op(A)[M, K] op(B)[K, N]; strides are per batch, in floats.</summary>
public readonly record struct MatMulShape(
    int Batch, int M, int N, int K, bool TransA, bool TransB,
    long StrideA, long StrideB, long StrideC)
{
    /// <summary>A single 2-D product with no batch.</summary>
    public static MatMulShape Single(int m, int n, int k, bool transA = false, bool transB = false) =>
        new(1, m, n, k, transA, transB, 0, 0, 0);

    /// <summary>Contiguous batches of A, B and C.</summary>
    public static MatMulShape Batched(int batch, int m, int n, int k, bool transA = false, bool transB = false) =>
        new(batch, m, n, k, transA, transB, (long)m * k, (long)k * n, (long)m * n);

    public double Flops => 2.0 * Batch * M * N * K;
}

/// <summary>
/// Where attention finds its rows. Pair bh = b·Heads + h (batch b, head h) reads row i of q, k, v,
/// and writes row i of dq, dk, dv, at b·InBatch + h·D + i·InRow of its buffer; row i of o and dO
/// sits at b·OutBatch + h·D + i·OutRow. Rows are D contiguous floats; lse stays dense [BH, N].
/// </summary>
/// <remarks>
/// Dense: q, k, v, o are [BH, N, D] (Heads 1). Packed: q, k, v are the three column blocks of a
/// to_qkv output [B, N, 3·H·D] (slices at 0, H·D, 2·H·D) and o is [B, N, H·D], heads side by
/// side. Packed attention reads and writes the layer's own activations in place, so the head
/// split and merge (four copies forward, four backward per layer) never happen.
/// </remarks>
public readonly record struct AttentionLayout(int Heads, int InBatch, int InRow, int OutBatch, int OutRow)
{
    /// <summary>Separate contiguous q, k, v, o: [BH, N, D].</summary>
    public static AttentionLayout Dense(int n, int d) => new(1, n * d, d, n * d, d);

    /// <summary>q, k, v sliced from qkv: [B, N, 3·heads·d]; o: [B, N, heads·d].</summary>
    public static AttentionLayout Packed(int heads, int n, int d) => new(heads, n * 3 * heads * d, 3 * heads * d, n * heads * d, heads * d);

    /// <summary>Offset of row 0 of pair bh in q, k, v, dq, dk, dv.</summary>
    public int InBase(int bh, int d) => bh / Heads * InBatch + bh % Heads * d;

    /// <summary>Offset of row 0 of pair bh in o and dO.</summary>
    public int OutBase(int bh, int d) => bh / Heads * OutBatch + bh % Heads * d;

    /// <summary>Floats a buffer needs to hold bh pairs of n rows: (in, out).</summary>
    public (long In, long Out) Extent(int bh, int n, int d)
    {
        if (bh <= 0 || n <= 0) return (0, 0);
        return ((long)InBase(bh - 1, d) + (long)(n - 1) * InRow + d, (long)OutBase(bh - 1, d) + (long)(n - 1) * OutRow + d);
    }
}

/// <summary>
/// Hyper-parameters of one AdamW step. The bias corrections 1 - beta^t are computed here once,
/// in double, so every backend uses the same numbers.
/// </summary>
public readonly record struct AdamWArgs(float Lr, float Beta1, float Beta2, float Eps, float WeightDecay, int Step)
{
    public float BiasCorrection1 => (float)(1 - Math.Pow(Beta1, Step));
    public float BiasCorrection2 => (float)(1 - Math.Pow(Beta2, Step));
}

/// <summary>Hyper-parameters of one SGD step (PyTorch semantics: L2 weight decay added to the gradient).</summary>
public readonly record struct SgdArgs(float Lr, float Momentum, bool Nesterov, float WeightDecay, bool FirstStep);

/// <summary>Small pure functions shared by the CPU and GPU kernels, so both compute the same bits.</summary>
public static class KernelMath
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

/// <summary>
/// erf for float32 kernels: Abramowitz and Stegun 7.1.26. Its error is below 1.5e-7 in exact
/// arithmetic and below about 4.3e-7 when evaluated in float32 (1 − poly·e^(−x²) cancels near 0),
/// which is well under what GELU's float32 tolerance needs. One polynomial and one exp, so the GPU
/// and SIMD versions compute the same formula.
/// </summary>
public static class Erf
{
    public const float P = 0.3275911f;
    public const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;

    public static float Of(float x)
    {
        float ax = MathF.Abs(x);
        float t = 1f / (1f + P * ax);
        float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        float r = 1f - poly * MathF.Exp(-ax * ax);
        return x < 0 ? -r : r;
    }
}
