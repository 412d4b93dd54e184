using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu.MatMul;

/// <summary>
/// AVX2 micro-kernel: C[6, 16] (=|+=) alpha * Apanel[6, kc] Bpanel[kc, 16].
///
/// Register budget (16 ymm): 12 accumulators (6 rows x 2 vectors of 8 columns), 2 for the current
/// row of B, 1 for the broadcast element of A; a 7th or 8th row would not fit. Each k step issues
/// 2 loads + 6 broadcasts for 12 FMAs, and 12 independent accumulator chains hide the 4-cycle FMA
/// latency (2 pipes x 4 cycles = 8 chains needed). With its operands in L1 and the core to itself
/// it runs at the rate of a plain FMA loop; when another tenant shares the core, the 8 loads per
/// step (a broadcast from memory uses a load port) become the limit (Benchmarks
/// --microkernel-probes, docs/cpu-kernels.md).
///
/// <see cref="Full"/> and <see cref="Half"/> read a packed A panel [kc][6] (see
/// <see cref="Packing"/>); <see cref="FullUnpackedA"/> and <see cref="HalfUnpackedA"/> read six rows of a
/// row-major A in place. The
/// B panel is always packed, [kc][16], so it is read strictly sequentially.
/// </summary>
internal static unsafe class MicroKernel256
{
    public const int MR = 6, NR = 16;

    /// <param name="kc">depth of this K block</param>
    /// <param name="a">packed A panel: a[p * 6 + r]</param>
    /// <param name="b">packed B panel: b[p * 16 + j]</param>
    /// <param name="c">top-left of the 6 x 16 output tile, rows <paramref name="ldc"/> floats apart</param>
    /// <param name="ldc">floats between consecutive rows of C</param>
    /// <param name="alpha">scale of the product</param>
    /// <param name="accumulate">add the scaled product to the tile instead of overwriting it</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Full(int kc, float* a, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
            a += MR;
            b += NR;
        }
        var al = Vector256.Create(alpha);
        Store(c, c00, al, accumulate); Store(c + 8, c01, al, accumulate); c += ldc;
        Store(c, c10, al, accumulate); Store(c + 8, c11, al, accumulate); c += ldc;
        Store(c, c20, al, accumulate); Store(c + 8, c21, al, accumulate); c += ldc;
        Store(c, c30, al, accumulate); Store(c + 8, c31, al, accumulate); c += ldc;
        Store(c, c40, al, accumulate); Store(c + 8, c41, al, accumulate); c += ldc;
        Store(c, c50, al, accumulate); Store(c + 8, c51, al, accumulate);
    }

    /// <summary>
    /// The same product for a tile only 8 columns wide (the first half of the B panel, still
    /// stored 16 wide): a ragged right edge such as N = 65 then costs 8 columns, not 16.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Half(int kc, float* a, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            c0 = Vector256.FusedMultiplyAdd(Vector256.Create(a[0]), b0, c0);
            c1 = Vector256.FusedMultiplyAdd(Vector256.Create(a[1]), b0, c1);
            c2 = Vector256.FusedMultiplyAdd(Vector256.Create(a[2]), b0, c2);
            c3 = Vector256.FusedMultiplyAdd(Vector256.Create(a[3]), b0, c3);
            c4 = Vector256.FusedMultiplyAdd(Vector256.Create(a[4]), b0, c4);
            c5 = Vector256.FusedMultiplyAdd(Vector256.Create(a[5]), b0, c5);
            a += MR;
            b += NR;
        }
        var al = Vector256.Create(alpha);
        Store(c, c0, al, accumulate); c += ldc;
        Store(c, c1, al, accumulate); c += ldc;
        Store(c, c2, al, accumulate); c += ldc;
        Store(c, c3, al, accumulate); c += ldc;
        Store(c, c4, al, accumulate); c += ldc;
        Store(c, c5, al, accumulate);
    }

    /// <summary>
    /// <see cref="Full"/> with A read in place instead of from a packed panel: row r of the tile is
    /// a[r * lda + p]. A row-major A is already "packed" along k for one row, so for the small K of
    /// a ViT's linear layers (K = 128..384, where packing A cost 10-20% of the multiply) the six
    /// rows are streamed straight from the operand: six sequential streams the prefetcher follows,
    /// one broadcast each per k step, exactly as from the packed panel. <paramref name="a"/> is the
    /// first element of the tile's first row of A, <paramref name="lda"/> the floats between its
    /// rows; the other parameters are <see cref="Full"/>'s.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FullUnpackedA(int kc, float* a, long lda, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        float* a0 = a, a3 = a + 3 * lda; // rows 0-2 at a0 + {0, 1, 2} lda, rows 3-5 at a3 + {0, 1, 2} lda
        long l2 = 2 * lda;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a0[0]);
            c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
            av = Vector256.Create(a0[lda]);
            c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
            av = Vector256.Create(a0[l2]);
            c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
            av = Vector256.Create(a3[0]);
            c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
            av = Vector256.Create(a3[lda]);
            c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
            av = Vector256.Create(a3[l2]);
            c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
            a0++;
            a3++;
            b += NR;
        }
        var al = Vector256.Create(alpha);
        Store(c, c00, al, accumulate); Store(c + 8, c01, al, accumulate); c += ldc;
        Store(c, c10, al, accumulate); Store(c + 8, c11, al, accumulate); c += ldc;
        Store(c, c20, al, accumulate); Store(c + 8, c21, al, accumulate); c += ldc;
        Store(c, c30, al, accumulate); Store(c + 8, c31, al, accumulate); c += ldc;
        Store(c, c40, al, accumulate); Store(c + 8, c41, al, accumulate); c += ldc;
        Store(c, c50, al, accumulate); Store(c + 8, c51, al, accumulate);
    }

    /// <summary><see cref="Half"/> with A read in place, as in <see cref="FullUnpackedA"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void HalfUnpackedA(int kc, float* a, long lda, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        float* a0 = a, a3 = a + 3 * lda;
        long l2 = 2 * lda;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            c0 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[0]), b0, c0);
            c1 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[lda]), b0, c1);
            c2 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[l2]), b0, c2);
            c3 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[0]), b0, c3);
            c4 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[lda]), b0, c4);
            c5 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[l2]), b0, c5);
            a0++;
            a3++;
            b += NR;
        }
        var al = Vector256.Create(alpha);
        Store(c, c0, al, accumulate); c += ldc;
        Store(c, c1, al, accumulate); c += ldc;
        Store(c, c2, al, accumulate); c += ldc;
        Store(c, c3, al, accumulate); c += ldc;
        Store(c, c4, al, accumulate); c += ldc;
        Store(c, c5, al, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> acc, Vector256<float> alpha, bool accumulate)
    {
        var r = accumulate ? Vector256.FusedMultiplyAdd(alpha, acc, Vector256.Load(c)) : alpha * acc;
        Vector256.Store(r, c);
    }
}
