using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu.MatMul;

/// <summary>
/// AVX-512 micro-kernel: C[8, 32] (=|+=) alpha * Apanel[8, kc] Bpanel[kc, 32].
///
/// Register budget (32 zmm): 16 accumulators (8 rows x 2 vectors of 16 columns), 2 for the current
/// row of B, 1 for the broadcast element of A. Per k step: 2 loads + 8 broadcasts for 16 FMAs of
/// 16 lanes (512 FLOP). 16 independent chains cover 2 FMA pipes x 4 cycles of latency twice over.
/// The tile comes from the project brief, where a hand-written 8 x 32 matmul reached 175-189
/// GFLOP/s on 2 Zen 5 cores. Here it runs on a Zen 4 (AVX-512 double-pumped), where its forward
/// products reach 86-91% of the one-core FMA loop and the K block was timed (Gemm.Avx512), and it
/// ran on the H100 machine's Xeon (docs/performance.md).
///
/// Operands come packed (see <see cref="Packing"/>): A panel [kc][8], B panel [kc][32]. Gemm.Run
/// packs A only for a ragged last group of rows: the StridedA forms read A's 8 values of one k at
/// any distance from the next k's (the weight gradient's transposed A, in place), and the RowsA
/// forms read 8 rows of a row-major A in place (the forward and input-gradient products).
/// </summary>
internal static unsafe class MicroKernel512
{
    public const int MR = 8, NR = 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Full(int kc, float* a, float* b, float* c, long ldc, float alpha, bool accumulate) =>
        FullStridedA(kc, a, MR, b, c, ldc, alpha, accumulate);

    /// <summary>
    /// <see cref="Full"/> with A's 8 values of step p at a + p <paramref name="aStep"/>: a packed panel
    /// (aStep = 8), or a transposed A read in place (aStep = lda; see Gemm.Run).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FullStridedA(int kc, float* a, long aStep, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a[6]);
            c60 = Vector512.FusedMultiplyAdd(av, b0, c60); c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a[7]);
            c70 = Vector512.FusedMultiplyAdd(av, b0, c70); c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
            a += aStep;
            b += NR;
        }
        var al = Vector512.Create(alpha);
        Store(c, c00, al, accumulate); Store(c + 16, c01, al, accumulate); c += ldc;
        Store(c, c10, al, accumulate); Store(c + 16, c11, al, accumulate); c += ldc;
        Store(c, c20, al, accumulate); Store(c + 16, c21, al, accumulate); c += ldc;
        Store(c, c30, al, accumulate); Store(c + 16, c31, al, accumulate); c += ldc;
        Store(c, c40, al, accumulate); Store(c + 16, c41, al, accumulate); c += ldc;
        Store(c, c50, al, accumulate); Store(c + 16, c51, al, accumulate); c += ldc;
        Store(c, c60, al, accumulate); Store(c + 16, c61, al, accumulate); c += ldc;
        Store(c, c70, al, accumulate); Store(c + 16, c71, al, accumulate);
    }

    /// <summary>An 8 x 16 tile from the first half of a 32-wide B panel, for ragged right edges.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Half(int kc, float* a, float* b, float* c, long ldc, float alpha, bool accumulate) =>
        HalfStridedA(kc, a, MR, b, c, ldc, alpha, accumulate);

    /// <summary><see cref="Half"/> with A's 8 values of step p at a + p <paramref name="aStep"/>, as in <see cref="FullStridedA"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void HalfStridedA(int kc, float* a, long aStep, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a[0]), b0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a[1]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a[2]), b0, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a[3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(a[4]), b0, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(a[5]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(a[6]), b0, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(a[7]), b0, c7);
            a += aStep;
            b += NR;
        }
        var al = Vector512.Create(alpha);
        Store(c, c0, al, accumulate); c += ldc;
        Store(c, c1, al, accumulate); c += ldc;
        Store(c, c2, al, accumulate); c += ldc;
        Store(c, c3, al, accumulate); c += ldc;
        Store(c, c4, al, accumulate); c += ldc;
        Store(c, c5, al, accumulate); c += ldc;
        Store(c, c6, al, accumulate); c += ldc;
        Store(c, c7, al, accumulate);
    }

    /// <summary>
    /// <see cref="Full"/> reading 8 rows of a row-major A in place: A(r, p) = a[r lda + p] (the
    /// forward and input-gradient products, whose A is an activation or a gradient). The same
    /// FMAs in the same order as on a packed panel, so the same bits; only the addresses differ.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FullRowsA(int kc, float* a, long lda, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        float* a0 = a, a4 = a + 4 * lda; // rows 0-3 at a0 + {0, 1, 2, 3} lda, rows 4-7 at a4 + the same
        long l2 = 2 * lda, l3 = 3 * lda;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a0[0]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a0[lda]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a0[l2]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a0[l3]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a4[0]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a4[lda]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a4[l2]);
            c60 = Vector512.FusedMultiplyAdd(av, b0, c60); c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a4[l3]);
            c70 = Vector512.FusedMultiplyAdd(av, b0, c70); c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
            a0++;
            a4++;
            b += NR;
        }
        var al = Vector512.Create(alpha);
        Store(c, c00, al, accumulate); Store(c + 16, c01, al, accumulate); c += ldc;
        Store(c, c10, al, accumulate); Store(c + 16, c11, al, accumulate); c += ldc;
        Store(c, c20, al, accumulate); Store(c + 16, c21, al, accumulate); c += ldc;
        Store(c, c30, al, accumulate); Store(c + 16, c31, al, accumulate); c += ldc;
        Store(c, c40, al, accumulate); Store(c + 16, c41, al, accumulate); c += ldc;
        Store(c, c50, al, accumulate); Store(c + 16, c51, al, accumulate); c += ldc;
        Store(c, c60, al, accumulate); Store(c + 16, c61, al, accumulate); c += ldc;
        Store(c, c70, al, accumulate); Store(c + 16, c71, al, accumulate);
    }

    /// <summary><see cref="Half"/> reading 8 rows of a row-major A in place, as in <see cref="FullRowsA"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void HalfRowsA(int kc, float* a, long lda, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        float* a0 = a, a4 = a + 4 * lda;
        long l2 = 2 * lda, l3 = 3 * lda;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[0]), b0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[lda]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[l2]), b0, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[l3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[0]), b0, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[lda]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[l2]), b0, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[l3]), b0, c7);
            a0++;
            a4++;
            b += NR;
        }
        var al = Vector512.Create(alpha);
        Store(c, c0, al, accumulate); c += ldc;
        Store(c, c1, al, accumulate); c += ldc;
        Store(c, c2, al, accumulate); c += ldc;
        Store(c, c3, al, accumulate); c += ldc;
        Store(c, c4, al, accumulate); c += ldc;
        Store(c, c5, al, accumulate); c += ldc;
        Store(c, c6, al, accumulate); c += ldc;
        Store(c, c7, al, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> acc, Vector512<float> alpha, bool accumulate)
    {
        var r = accumulate ? Vector512.FusedMultiplyAdd(alpha, acc, Vector512.Load(c)) : alpha * acc;
        Vector512.Store(r, c);
    }
}
