using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// The work around the products in the CPU fused attention (CpuKernels.Attention.cs): the key and
/// value transposes, and the row-wise softmax and its backward over one block of scores.
///
/// Why these are not the generic Simd helpers: a score row is N = 17..65 floats, so per-row
/// overheads (scalar tails, span checks, strided scalar copies) are a visible share of the work.
/// - Score rows are padded to np, a whole number of vectors (the keys are zero-padded to np). The
///   padding columns are set to -inf before the softmax, so every loop below runs whole vectors
///   with no scalar tail (a 65-wide row had one scalar MathF.Exp), and the padding comes out of
///   exp as exact zeros, which keeps the padded columns of P and dS zero. This is for simpler
///   loops more than for speed: the softmax steps take 7-9% of the kernels' time either way.
/// - The transpose moves 8 x 8 blocks through registers (Block8x8, AVX) instead of one strided scalar load
///   per element; a scalar loop remains for CPUs without AVX and for ragged edges. In `perf` on
///   one thread over vit-tiny's shapes (N = 65, d = 64, forward + backward), the scalar transposes
///   took 14% of the kernels' samples, the blocked ones 7.8% (d5a4caf) and 7.2% (a later run);
///   what is left is mostly the first touch of k and v, which the transpose is the first to read
///   (prefetching the next pair's rows was tried and measured no faster:
///   docs/log/2026-performance-log.md).
/// </summary>
internal static unsafe class AttentionRows
{
    /// <summary>Keys padded to a whole number of vectors, so the score products and rows never take a scalar column.</summary>
    public static int PaddedKeys(int n, SimdPath path)
    {
        int w = path == SimdPath.Vector512 ? 16 : 8;
        return (n + w - 1) / w * w;
    }

    /// <summary>t[c, j] = x[j, c] for j &lt; n and 0 for n &lt;= j &lt; np: x is [n, d] with rows ldx apart, t is [d, np].</summary>
    public static void Transpose(float* x, int n, int d, long ldx, float* t, int np) =>
        Transpose(x, n, d, ldx, t, np, Block8x8.IsSupported);

    /// <summary>As above; <paramref name="blocked"/> picks the AVX 8 x 8 register transpose (tests run both ways).</summary>
    internal static void Transpose(float* x, int n, int d, long ldx, float* t, int np, bool blocked)
    {
        int n8 = blocked ? n / 8 * 8 : 0, d8 = blocked ? d / 8 * 8 : 0;
        for (int j0 = 0; j0 < n8; j0 += 8)
        {
            for (int c0 = 0; c0 < d8; c0 += 8) Block8x8.Transpose(x + j0 * ldx + c0, ldx, t + (long)c0 * np + j0, np);
            for (int c = d8; c < d; c++) // ragged columns of these 8 rows
                for (int j = j0; j < j0 + 8; j++) t[(long)c * np + j] = x[j * ldx + c];
        }
        for (int c = 0; c < d; c++) // ragged rows (all rows without AVX), then the zero padding
        {
            float* tr = t + (long)c * np;
            for (int j = n8; j < n; j++) tr[j] = x[j * ldx + c];
            for (int j = n; j < np; j++) tr[j] = 0f;
        }
    }

    /// <summary>
    /// row[j] = exp(row[j] - shift) over a padded score row: the n real scores, then np - n
    /// padding columns, which come out as 0 (exp of -inf). np is a whole number of
    /// <paramref name="path"/>'s vectors. Returns the sum.
    /// The padding is set to -inf in a register, in the vector that holds the row's last scores,
    /// not by scalar stores into the row: a vector load over just-stored scalars cannot take its
    /// data from the store buffer and waits for the stores to retire. With the stores this
    /// function took 29% of vit-micro's attention forward (`perf`, d = 32, N = 65: 5 vectors a row,
    /// 15 padding columns); the result is the same, bit for bit.
    /// <paramref name="shiftIsRowMax"/> (the forward pass) says that no x - shift exceeds 0, so
    /// the cheaper <see cref="Simd.ExpBelow88(Vector512{float})"/> gives the same bits as Exp; the
    /// backward shifts by a stored log-sum-exp, which a caller may pass from anywhere.
    /// </summary>
    public static float ExpShifted(float* row, int n, int np, float shift, SimdPath path, bool shiftIsRowMax = false)
    {
        int j = 0;
        if (path == SimdPath.Vector512)
        {
            var sh = Vector512.Create(shift);
            var acc = Vector512<float>.Zero;
            for (; j + 16 <= n; j += 16)
            {
                var x = Vector512.Load(row + j) - sh;
                var e = shiftIsRowMax ? Simd.ExpBelow88(x) : Simd.Exp(x);
                Vector512.Store(e, row + j);
                acc += e;
            }
            for (; j < np; j += 16) // the last real scores with their padding, then padding only
            {
                var real = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(n - j)).AsSingle();
                var x = Vector512.ConditionalSelect(real, Vector512.Load(row + j), Vector512.Create(float.NegativeInfinity)) - sh;
                var e = shiftIsRowMax ? Simd.ExpBelow88(x) : Simd.Exp(x);
                Vector512.Store(e, row + j);
                acc += e;
            }
            return Vector512.Sum(acc);
        }
        else
        {
            var sh = Vector256.Create(shift);
            var acc = Vector256<float>.Zero;
            for (; j + 8 <= n; j += 8)
            {
                var x = Vector256.Load(row + j) - sh;
                var e = shiftIsRowMax ? Simd.ExpBelow88(x) : Simd.Exp(x);
                Vector256.Store(e, row + j);
                acc += e;
            }
            for (; j < np; j += 8)
            {
                var real = Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(n - j)).AsSingle();
                var x = Vector256.ConditionalSelect(real, Vector256.Load(row + j), Vector256.Create(float.NegativeInfinity)) - sh;
                var e = shiftIsRowMax ? Simd.ExpBelow88(x) : Simd.Exp(x);
                Vector256.Store(e, row + j);
                acc += e;
            }
            return Vector256.Sum(acc);
        }
    }

    /// <summary>
    /// The largest of row[0..n); the padding (n..np) is read but ignored: the vector holding the
    /// last scores is masked to -inf in a register, so every load is a whole vector (a scalar tail
    /// and an 8-lane scalar reduction took 6% of vit-micro's attention forward).
    /// MaxNative is one vmaxps; Vector.Max orders -0 and NaN per IEEE and costs several. Which zero
    /// or NaN comes out does not matter: a NaN score reaches the output through exp(NaN - max),
    /// and exp(score - max) and max + log(sum) are the same for max = -0 and +0.
    /// </summary>
    public static float Max(float* row, int n, int np, SimdPath path)
    {
        if (n <= 0) return float.NegativeInfinity;
        // The masked load reads up to the next whole vector past n: the row must be padded that far.
        System.Diagnostics.Debug.Assert(np >= PaddedKeys(n, path), "Max reads the row's padding up to a whole vector");
        int j = 0;
        Vector256<float> acc256;
        if (path == SimdPath.Vector512)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; j + 16 <= n; j += 16) acc = Vector512.MaxNative(acc, Vector512.Load(row + j));
            if (j < n)
            {
                var real = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(n - j)).AsSingle();
                acc = Vector512.MaxNative(acc, Vector512.ConditionalSelect(real, Vector512.Load(row + j), Vector512.Create(float.NegativeInfinity)));
            }
            acc256 = Vector256.MaxNative(acc.GetLower(), acc.GetUpper());
        }
        else
        {
            acc256 = Vector256.Create(float.NegativeInfinity);
            for (; j + 8 <= n; j += 8) acc256 = Vector256.MaxNative(acc256, Vector256.Load(row + j));
            if (j < n)
            {
                var real = Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(n - j)).AsSingle();
                acc256 = Vector256.MaxNative(acc256, Vector256.ConditionalSelect(real, Vector256.Load(row + j), Vector256.Create(float.NegativeInfinity)));
            }
        }
        var acc128 = Vector128.MaxNative(acc256.GetLower(), acc256.GetUpper());
        return MathF.Max(MathF.Max(acc128[0], acc128[1]), MathF.Max(acc128[2], acc128[3]));
    }

    /// <summary>row[j] *= alpha over the padded row (np a whole number of vectors).</summary>
    public static void Scale(float* row, int np, float alpha, SimdPath path)
    {
        if (path == SimdPath.Vector512)
        {
            var a = Vector512.Create(alpha);
            for (int j = 0; j < np; j += 16) Vector512.Store(Vector512.Load(row + j) * a, row + j);
        }
        else
        {
            var a = Vector256.Create(alpha);
            for (int j = 0; j < np; j += 8) Vector256.Store(Vector256.Load(row + j) * a, row + j);
        }
    }

    /// <summary>g[j] = p[j] (g[j] - D) over padded rows: the softmax backward of one row, no dropout.</summary>
    public static void SoftmaxGrad(float* p, float* g, int np, float D, SimdPath path)
    {
        if (path == SimdPath.Vector512)
        {
            var dv = Vector512.Create(D);
            for (int j = 0; j < np; j += 16)
                Vector512.Store(Vector512.Load(p + j) * (Vector512.Load(g + j) - dv), g + j);
        }
        else
        {
            var dv = Vector256.Create(D);
            for (int j = 0; j < np; j += 8)
                Vector256.Store(Vector256.Load(p + j) * (Vector256.Load(g + j) - dv), g + j);
        }
    }

    /// <summary>
    /// With dropout mask m (0 or 1/(1-p)) over the first n columns: g[j] = p[j] (m[j] g[j] - D),
    /// then p[j] = p[j] m[j] (the weights dV needs). The padding columns of p are 0 and stay so.
    /// </summary>
    public static void SoftmaxGradDropout(float* p, float* g, float* m, int n, float D)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var dv = Vector256.Create(D);
            for (; j <= n - 8; j += 8)
            {
                var pv = Vector256.Load(p + j); var mv = Vector256.Load(m + j);
                Vector256.Store(pv * (mv * Vector256.Load(g + j) - dv), g + j);
                Vector256.Store(pv * mv, p + j);
            }
        }
        for (; j < n; j++)
        {
            float pv = p[j], mv = m[j];
            g[j] = pv * (mv * g[j] - D);
            p[j] = pv * mv;
        }
    }
}
