using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu.MatMul;

/// <summary>
/// C[i, j] (=|+=) alpha * sum_p A(i, p) B[p, j] for the tiny products inside fused attention
/// (one (batch, head) pair: 17 x 17 x 32 for vit-micro on Fashion-MNIST, 65 x 65 x 64 for vit-tiny).
///
/// Why not <see cref="Gemm"/>: at these sizes packing, ragged edge tiles and the copy-out cost
/// more than the multiply (attention ran at 6 GFLOP/s at N = 17 through Gemm). Here nothing is
/// packed. B is read in place, row-major (its rows <c>ldb</c> floats apart), one or two vectors
/// per k step; A is only ever broadcast, one scalar at a time, so it may have any layout:
/// A(i, p) = a[i*ars + p*acs]. A transposed A (Pᵀ dO, dSᵀ Q) is just acs = 1, ars = the row length.
///
/// Register blocking: 4 rows of C x 3 vectors on AVX2 (12 accumulators; on AVX-512, where a vector
/// is 16 wide and there are 32 registers, 8 rows x 2 vectors), then 4 x 2 and 4 x 1 vector for leftover columns, and
/// plain scalar loops for the last columns that do not fill a vector (callers pad their B to a
/// whole number of vectors where that matters, see CpuKernels.Attention.cs).
/// </summary>
internal static unsafe class SmallGemm
{
    public static void Run(SimdPath path, int m, int n, int k, float* a, long ars, long acs,
        float* b, long ldb, float* c, long ldc, float alpha, bool accumulate)
    {
        if (m <= 0 || n <= 0) return;
        int j = 0;
        if (path == SimdPath.Vector512)
        {
            for (; j + 32 <= n; j += 32) Cols512x8(m, k, a, ars, acs, b + j, ldb, c + j, ldc, alpha, accumulate);
            for (; j + 16 <= n; j += 16) Cols512(1, m, k, a, ars, acs, b + j, ldb, c + j, ldc, alpha, accumulate);
        }
        // Whole blocks of three vectors, except that a remainder of 32 columns (d = 32, the
        // vit-micro head; also 56, 80, ...) goes as two blocks of two rather than three and one:
        // the one-vector loop keeps 4 accumulators, too few to cover the FMA latency of two pipes.
        int threeBlocks = (n - j) / 24;
        if (threeBlocks > 0 && (n - j) % 24 == 8) threeBlocks--;
        for (int t = 0; t < threeBlocks; t++, j += 24) Cols256x3(m, k, a, ars, acs, b + j, ldb, c + j, ldc, alpha, accumulate);
        for (; j + 16 <= n; j += 16) Cols256(2, m, k, a, ars, acs, b + j, ldb, c + j, ldc, alpha, accumulate);
        for (; j + 8 <= n; j += 8) Cols256(1, m, k, a, ars, acs, b + j, ldb, c + j, ldc, alpha, accumulate);
        for (; j < n; j++) ScalarColumn(m, k, a, ars, acs, b + j, ldb, c + j, ldc, alpha, accumulate);
    }

    // Three Vector256 columns (24) of B and C, 4 rows at a time: 12 accumulators, 3 B vectors and
    // one broadcast fill the 16 ymm registers. 24 columns is exactly the padded key count for
    // N = 17, and 72 = 3 x 24 for N = 65, so the score products run entirely in this loop.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Cols256x3(int m, int k, float* a, long ars, long acs,
        float* b, long ldb, float* c, long ldc, float alpha, bool accumulate)
    {
        var al = Vector256.Create(alpha);
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            Vector256<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default;
            Vector256<float> c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default;
            float* a0 = a + i * ars, a1 = a0 + ars, a2 = a1 + ars, a3 = a2 + ars;
            float* bp = b;
            long o = 0;
            for (int p = 0; p < k; p++, bp += ldb, o += acs)
            {
                var b0 = Vector256.Load(bp);
                var b1 = Vector256.Load(bp + 8);
                var b2 = Vector256.Load(bp + 16);
                var x = Vector256.Create(a0[o]);
                c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01); c02 = Vector256.FusedMultiplyAdd(x, b2, c02);
                x = Vector256.Create(a1[o]);
                c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11); c12 = Vector256.FusedMultiplyAdd(x, b2, c12);
                x = Vector256.Create(a2[o]);
                c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21); c22 = Vector256.FusedMultiplyAdd(x, b2, c22);
                x = Vector256.Create(a3[o]);
                c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31); c32 = Vector256.FusedMultiplyAdd(x, b2, c32);
            }
            float* cr = c + i * ldc;
            Store(cr, c00, al, accumulate); Store(cr + 8, c01, al, accumulate); Store(cr + 16, c02, al, accumulate); cr += ldc;
            Store(cr, c10, al, accumulate); Store(cr + 8, c11, al, accumulate); Store(cr + 16, c12, al, accumulate); cr += ldc;
            Store(cr, c20, al, accumulate); Store(cr + 8, c21, al, accumulate); Store(cr + 16, c22, al, accumulate); cr += ldc;
            Store(cr, c30, al, accumulate); Store(cr + 8, c31, al, accumulate); Store(cr + 16, c32, al, accumulate);
        }
        if (i < m)
        {
            // The last 1-3 rows: the two-vector loop for 16 columns, the one-vector loop for 8.
            Cols256(2, m - i, k, a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, alpha, accumulate);
            Cols256(1, m - i, k, a + i * ars, ars, acs, b + 16, ldb, c + i * ldc + 16, ldc, alpha, accumulate);
        }
    }

    // `vectors` (1 or 2) Vector256 columns of B and C, every row of C.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Cols256(int vectors, int m, int k, float* a, long ars, long acs,
        float* b, long ldb, float* c, long ldc, float alpha, bool accumulate)
    {
        var al = Vector256.Create(alpha);
        bool two = vectors == 2;
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
            Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
            float* a0 = a + i * ars, a1 = a0 + ars, a2 = a1 + ars, a3 = a2 + ars;
            float* bp = b;
            long o = 0;
            if (two)
                for (int p = 0; p < k; p++, bp += ldb, o += acs)
                {
                    var b0 = Vector256.Load(bp);
                    var b1 = Vector256.Load(bp + 8);
                    var x = Vector256.Create(a0[o]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                    x = Vector256.Create(a1[o]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                    x = Vector256.Create(a2[o]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                    x = Vector256.Create(a3[o]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
                }
            else
                for (int p = 0; p < k; p++, bp += ldb, o += acs)
                {
                    var b0 = Vector256.Load(bp);
                    c00 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[o]), b0, c00);
                    c10 = Vector256.FusedMultiplyAdd(Vector256.Create(a1[o]), b0, c10);
                    c20 = Vector256.FusedMultiplyAdd(Vector256.Create(a2[o]), b0, c20);
                    c30 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[o]), b0, c30);
                }
            float* cr = c + i * ldc;
            Store(cr, c00, al, accumulate); if (two) Store(cr + 8, c01, al, accumulate); cr += ldc;
            Store(cr, c10, al, accumulate); if (two) Store(cr + 8, c11, al, accumulate); cr += ldc;
            Store(cr, c20, al, accumulate); if (two) Store(cr + 8, c21, al, accumulate); cr += ldc;
            Store(cr, c30, al, accumulate); if (two) Store(cr + 8, c31, al, accumulate);
        }
        for (; i < m; i++)
        {
            Vector256<float> c00 = default, c01 = default;
            float* a0 = a + i * ars, bp = b;
            long o = 0;
            for (int p = 0; p < k; p++, bp += ldb, o += acs)
            {
                var x = Vector256.Create(a0[o]);
                c00 = Vector256.FusedMultiplyAdd(x, Vector256.Load(bp), c00);
                if (two) c01 = Vector256.FusedMultiplyAdd(x, Vector256.Load(bp + 8), c01);
            }
            float* cr = c + i * ldc;
            Store(cr, c00, al, accumulate); if (two) Store(cr + 8, c01, al, accumulate);
        }
    }

    // 8 rows of C x 2 Vector512 columns (32): 16 accumulators, 2 B vectors and a broadcast of the
    // 32 zmm registers; half the B loads per FMA of the 4-row block, and twice the independent
    // chains. Against 4-row blocks, vit-micro's attention (forward + backward, d = 32) ran 1.07-1.22x
    // faster, vit-tiny's (d = 64) 1.00-1.02x (interleaved, Zen 4, under load;
    // docs/log/2026-performance-log.md). Leftover rows: Cols512(2).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Cols512x8(int m, int k, float* a, long ars, long acs,
        float* b, long ldb, float* c, long ldc, float alpha, bool accumulate)
    {
        var al = Vector512.Create(alpha);
        int i = 0;
        for (; i + 8 <= m; i += 8)
        {
            Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
            Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
            float* a0 = a + i * ars, a4 = a0 + 4 * ars;
            long r1 = ars, r2 = 2 * ars, r3 = 3 * ars;
            float* bp = b;
            long o = 0;
            for (int p = 0; p < k; p++, bp += ldb, o += acs)
            {
                var b0 = Vector512.Load(bp);
                var b1 = Vector512.Load(bp + 16);
                var x = Vector512.Create(a0[o]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
                x = Vector512.Create(a0[o + r1]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
                x = Vector512.Create(a0[o + r2]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
                x = Vector512.Create(a0[o + r3]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
                x = Vector512.Create(a4[o]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
                x = Vector512.Create(a4[o + r1]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
                x = Vector512.Create(a4[o + r2]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
                x = Vector512.Create(a4[o + r3]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            }
            float* cr = c + i * ldc;
            Store(cr, c00, al, accumulate); Store(cr + 16, c01, al, accumulate); cr += ldc;
            Store(cr, c10, al, accumulate); Store(cr + 16, c11, al, accumulate); cr += ldc;
            Store(cr, c20, al, accumulate); Store(cr + 16, c21, al, accumulate); cr += ldc;
            Store(cr, c30, al, accumulate); Store(cr + 16, c31, al, accumulate); cr += ldc;
            Store(cr, c40, al, accumulate); Store(cr + 16, c41, al, accumulate); cr += ldc;
            Store(cr, c50, al, accumulate); Store(cr + 16, c51, al, accumulate); cr += ldc;
            Store(cr, c60, al, accumulate); Store(cr + 16, c61, al, accumulate); cr += ldc;
            Store(cr, c70, al, accumulate); Store(cr + 16, c71, al, accumulate);
        }
        if (i < m) Cols512(2, m - i, k, a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, alpha, accumulate);
    }

    // The same with Vector512 (16 columns per vector).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Cols512(int vectors, int m, int k, float* a, long ars, long acs,
        float* b, long ldb, float* c, long ldc, float alpha, bool accumulate)
    {
        var al = Vector512.Create(alpha);
        bool two = vectors == 2;
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
            Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
            float* a0 = a + i * ars, a1 = a0 + ars, a2 = a1 + ars, a3 = a2 + ars;
            float* bp = b;
            long o = 0;
            if (two)
                for (int p = 0; p < k; p++, bp += ldb, o += acs)
                {
                    var b0 = Vector512.Load(bp);
                    var b1 = Vector512.Load(bp + 16);
                    var x = Vector512.Create(a0[o]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
                    x = Vector512.Create(a1[o]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
                    x = Vector512.Create(a2[o]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
                    x = Vector512.Create(a3[o]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
                }
            else
                for (int p = 0; p < k; p++, bp += ldb, o += acs)
                {
                    var b0 = Vector512.Load(bp);
                    c00 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[o]), b0, c00);
                    c10 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[o]), b0, c10);
                    c20 = Vector512.FusedMultiplyAdd(Vector512.Create(a2[o]), b0, c20);
                    c30 = Vector512.FusedMultiplyAdd(Vector512.Create(a3[o]), b0, c30);
                }
            float* cr = c + i * ldc;
            Store(cr, c00, al, accumulate); if (two) Store(cr + 16, c01, al, accumulate); cr += ldc;
            Store(cr, c10, al, accumulate); if (two) Store(cr + 16, c11, al, accumulate); cr += ldc;
            Store(cr, c20, al, accumulate); if (two) Store(cr + 16, c21, al, accumulate); cr += ldc;
            Store(cr, c30, al, accumulate); if (two) Store(cr + 16, c31, al, accumulate);
        }
        for (; i < m; i++)
        {
            Vector512<float> c00 = default, c01 = default;
            float* a0 = a + i * ars, bp = b;
            long o = 0;
            for (int p = 0; p < k; p++, bp += ldb, o += acs)
            {
                var x = Vector512.Create(a0[o]);
                c00 = Vector512.FusedMultiplyAdd(x, Vector512.Load(bp), c00);
                if (two) c01 = Vector512.FusedMultiplyAdd(x, Vector512.Load(bp + 16), c01);
            }
            float* cr = c + i * ldc;
            Store(cr, c00, al, accumulate); if (two) Store(cr + 16, c01, al, accumulate);
        }
    }

    private static void ScalarColumn(int m, int k, float* a, long ars, long acs, float* b, long ldb, float* c, long ldc, float alpha, bool accumulate)
    {
        for (int i = 0; i < m; i++)
        {
            float s = 0f;
            float* ai = a + i * ars;
            for (int p = 0; p < k; p++) s += ai[p * acs] * b[p * ldb];
            float* ci = c + i * ldc;
            *ci = accumulate ? *ci + alpha * s : alpha * s;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> acc, Vector256<float> alpha, bool accumulate)
    {
        var v = acc * alpha;
        if (accumulate) v += Vector256.Load(c);
        Vector256.Store(v, c);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> acc, Vector512<float> alpha, bool accumulate)
    {
        var v = acc * alpha;
        if (accumulate) v += Vector512.Load(c);
        Vector512.Store(v, c);
    }
}
