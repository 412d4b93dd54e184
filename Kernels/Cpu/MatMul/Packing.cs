using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu.MatMul;

/// <summary>
/// Packing copies a block of A or B into the exact order the micro-kernel reads it, so the kernel
/// streams contiguous, aligned memory whatever the operand's layout or transpose:
///
///   A block [mc, kc] -> panels of <c>mr</c> rows,    each stored [kc][mr]  (k-major)
///   B block [kc, nc] -> panels of <c>nr</c> columns, each stored [kc][nr]
///
/// Rows or columns past the edge of the matrix are written as zeros, so the micro-kernel always
/// runs on a full tile and never branches on ragged sizes. Transposes are absorbed here: a
/// transposed operand only changes which index is contiguous in the source, never requires a
/// transposed copy of the whole matrix. Packing reads O(mc kc + kc nc) floats for O(mc kc nc)
/// multiply-adds of work, so it costs a few percent once the blocks are large.
/// </summary>
internal static unsafe class Packing
{
    /// <summary>
    /// Packs op(A)[i0 .. i0+mc, p0 .. p0+kc] where op(A)[i, p] = transA ? a[p*lda + i] : a[i*lda + p].
    /// </summary>
    public static void PackA(float* a, long lda, bool transA, int i0, int mc, int p0, int kc, int mr, float* dst) =>
        PackA(a, lda, transA, i0, mc, p0, kc, mr, dst, Block8x8.IsSupported);

    /// <param name="blocked">interleave 8-row panels (the AVX-512 kernel's) in 8 x 8 register blocks (tests run both ways)</param>
    internal static void PackA(float* a, long lda, bool transA, int i0, int mc, int p0, int kc, int mr, float* dst, bool blocked)
    {
        for (int ir = 0; ir < mc; ir += mr)
        {
            int rows = Math.Min(mr, mc - ir);
            if (transA)
            {
                // A stored [K, M]: the mr values of one k are adjacent in memory.
                float* src = a + (long)p0 * lda + i0 + ir;
                for (int p = 0; p < kc; p++, src += lda, dst += mr)
                {
                    if (rows == 8 && mr == 8) Vector256.Store(Vector256.Load(src), dst);
                    else if (rows == 6 && mr == 6)
                    {
                        // The AVX2 panel (mr = 6): 4 + 2 floats, never reading past the 6 that exist.
                        Vector128.Store(Vector128.Load(src), dst);
                        *(double*)(dst + 4) = *(double*)(src + 4);
                    }
                    else
                    {
                        int r = 0;
                        for (; r < rows; r++) dst[r] = src[r];
                        for (; r < mr; r++) dst[r] = 0f;
                    }
                }
            }
            else
            {
                // A stored [M, K]: each row is contiguous along k; interleave mr rows.
                float* src = a + (long)(i0 + ir) * lda + p0;
                if (blocked && mr == 8 && rows == 8)
                {
                    // Interleaving 8 rows is transposing 8 x 8 blocks along k (then a scalar tail).
                    int k8 = kc / 8 * 8;
                    for (int p = 0; p < k8; p += 8) Block8x8.Transpose(src + p, lda, dst + p * 8, 8);
                    for (int r = 0; r < 8; r++)
                        for (int p = k8; p < kc; p++) dst[p * 8 + r] = src[r * lda + p];
                    dst += (long)kc * 8;
                    continue;
                }
                for (int r = 0; r < mr; r++)
                {
                    float* d = dst + r;
                    if (r < rows)
                    {
                        float* s = src + r * lda;
                        for (int p = 0; p < kc; p++) d[p * mr] = s[p];
                    }
                    else
                        for (int p = 0; p < kc; p++) d[p * mr] = 0f;
                }
                dst += (long)kc * mr;
            }
        }
    }

    /// <summary>
    /// Packs op(B)[p0 .. p0+kc, j0 .. j0+nc] where op(B)[p, j] = transB ? b[j*ldb + p] : b[p*ldb + j].
    /// </summary>
    public static void PackB(float* b, long ldb, bool transB, int p0, int kc, int j0, int nc, int nr, float* dst) =>
        PackB(b, ldb, transB, p0, kc, j0, nc, nr, dst, Block8x8.IsSupported);

    /// <param name="blocked">transpose whole 8 x 8 blocks through registers where a transposed B allows (tests run both ways)</param>
    internal static void PackB(float* b, long ldb, bool transB, int p0, int kc, int j0, int nc, int nr, float* dst, bool blocked)
    {
        for (int jr = 0; jr < nc; jr += nr)
        {
            int cols = Math.Min(nr, nc - jr);
            if (!transB)
            {
                // B stored [K, N]: one k row of the panel is nr adjacent floats.
                float* src = b + (long)p0 * ldb + j0 + jr;
                for (int p = 0; p < kc; p++, src += ldb, dst += nr)
                {
                    if (cols == nr) CopyRun(src, dst, nr);
                    else
                    {
                        int j = 0;
                        for (; j < cols; j++) dst[j] = src[j];
                        for (; j < nr; j++) dst[j] = 0f;
                    }
                }
            }
            else
            {
                // B stored [N, K]: each column of op(B) is contiguous along k; interleave nr of them.
                float* src = b + (long)(j0 + jr) * ldb + p0;
                if (blocked && cols == nr)
                {
                    // A full panel is nr / 8 strips of 8 columns: 8 x 8 blocks along k, then a scalar tail.
                    int k8 = kc / 8 * 8;
                    for (int jb = 0; jb < nr; jb += 8)
                    {
                        for (int p = 0; p < k8; p += 8) Block8x8.Transpose(src + jb * ldb + p, ldb, dst + (long)p * nr + jb, nr);
                        for (int j = jb; j < jb + 8; j++)
                            for (int p = k8; p < kc; p++) dst[(long)p * nr + j] = src[j * ldb + p];
                    }
                    dst += (long)kc * nr;
                    continue;
                }
                for (int j = 0; j < nr; j++)
                {
                    float* d = dst + j;
                    if (j < cols)
                    {
                        float* s = src + j * ldb;
                        for (int p = 0; p < kc; p++) d[p * nr] = s[p];
                    }
                    else
                        for (int p = 0; p < kc; p++) d[p * nr] = 0f;
                }
                dst += (long)kc * nr;
            }
        }
    }

    // nr is 16 or 32: whole 256-bit vectors (the packed destination is 64-byte aligned).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRun(float* src, float* dst, int n)
    {
        for (int j = 0; j < n; j += 8) Vector256.Store(Vector256.Load(src + j), dst + j);
    }
}
