using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
/// multiply-adds of work, so it costs a few percent once the blocks are large, except where the
/// source comes from memory and is read only once: the weight gradients (K = batch x tokens)
/// spent about 15% of their time here (DealRows), which is why the AVX-512 path reads their
/// transposed A in place (Gemm.Run).
/// </summary>
internal static unsafe class Packing
{
    /// <summary>
    /// Packs op(A)[i0 .. i0+mc, p0 .. p0+kc] where op(A)[i, p] = transA ? a[p*lda + i] : a[i*lda + p].
    /// </summary>
    public static void PackA(float* a, long lda, bool transA, int i0, int mc, int p0, int kc, int mr, float* dst) =>
        PackA(a, lda, transA, i0, mc, p0, kc, mr, dst, Block8x8.IsSupported, RowsAhead);

    /// <summary>
    /// As above. <paramref name="blocked"/>: interleave 8-row panels (the AVX-512 kernel's) in 8 x 8
    /// register blocks (tests run both ways). <paramref name="ahead"/>: for a transposed A, prefetch
    /// the source row this many k ahead; 0 = none (benchmarks compare).
    /// </summary>
    internal static void PackA(float* a, long lda, bool transA, int i0, int mc, int p0, int kc, int mr, float* dst, bool blocked, int ahead)
    {
        if (transA)
        {
            // A stored [K, M]: the mr values of one k are adjacent in memory.
            DealRows(a + (long)p0 * lda + i0, lda, kc, mc, mr, dst, ahead);
            return;
        }
        for (int ir = 0; ir < mc; ir += mr)
        {
            int rows = Math.Min(mr, mc - ir);
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

    /// <summary>
    /// Packs op(B)[p0 .. p0+kc, j0 .. j0+nc] where op(B)[p, j] = transB ? b[j*ldb + p] : b[p*ldb + j].
    /// </summary>
    public static void PackB(float* b, long ldb, bool transB, int p0, int kc, int j0, int nc, int nr, float* dst) =>
        PackB(b, ldb, transB, p0, kc, j0, nc, nr, dst, Block8x8.IsSupported, RowsAhead);

    /// <summary>
    /// As above. <paramref name="blocked"/>: transpose whole 8 x 8 blocks through registers where a
    /// transposed B allows (tests run both ways). <paramref name="ahead"/>: for B as stored, prefetch
    /// the source row this many k ahead; 0 = none (benchmarks compare).
    /// </summary>
    internal static void PackB(float* b, long ldb, bool transB, int p0, int kc, int j0, int nc, int nr, float* dst, bool blocked, int ahead)
    {
        if (!transB)
        {
            // B stored [K, N]: one k row of a panel is nr adjacent floats.
            DealRows(b + (long)p0 * ldb + j0, ldb, kc, nc, nr, dst, ahead);
            return;
        }
        for (int jr = 0; jr < nc; jr += nr)
        {
            int cols = Math.Min(nr, nc - jr);
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

    /// <summary>How many k rows ahead <see cref="DealRows"/> prefetches its source.</summary>
    public const int RowsAhead = 8;

    // The packing of a k-major source (a transposed A, a B as stored): row p of the block holds
    // `width` adjacent floats, w of which go to each panel (w = mr or nr), and panel q is stored
    // [kc][w] at dst + q kc w, the last one zero-padded. The loop runs k outermost, so each source
    // row segment (one run of cache lines) is read front to back once, and it prefetches the row
    // `ahead` rows below: the weight gradients read their operands (dY and X, 19 and 6.4 MB for
    // vit-tiny's qkv at batch 128) exactly once, from memory, and without the prefetch the packing
    // waited on each row in turn. Against the old panel-by-panel packing those products ran
    // 1.13-1.19x faster on the Zen 3 host (a one-off A/B; packing fell from 22-24% to 15% of their
    // perf samples); the prefetch alone is 1.03-1.06x (an interleaved A/B recorded in
    // docs/log/2026-performance-log.md).
    private static void DealRows(float* src, long ld, int kc, int width, int w, float* dst, int ahead)
    {
        int full = width / w * w, rest = width - full; // whole panels, then the columns of a ragged last one
        long panel = (long)kc * w;                      // floats per packed panel
        for (int p = 0; p < kc; p++, src += ld)
        {
            if (ahead > 0 && p + ahead < kc && Sse.IsSupported)
            {
                byte* next = (byte*)(src + ahead * ld);
                for (int c = 0; c < width * sizeof(float); c += 64) Sse.Prefetch0(next + c);
                Sse.Prefetch0(next + width * sizeof(float) - 1); // the last line, when the row is unaligned
            }
            float* d = dst + (long)p * w;
            int j = 0;
            if (w == 16 || w == 32 || w == 8)
                for (; j < full; j += w, d += panel) CopyRun(src + j, d, w);
            else if (w == 6)
                for (; j < full; j += 6, d += panel)
                {
                    // The AVX2 A panel: 4 + 2 floats, never reading past the 6 that exist.
                    Vector128.Store(Vector128.Load(src + j), d);
                    *(double*)(d + 4) = *(double*)(src + j + 4);
                }
            else
                for (; j < full; j += w, d += panel)
                    for (int r = 0; r < w; r++) d[r] = src[j + r];
            if (rest > 0)
            {
                int r = 0;
                for (; r < rest; r++) d[r] = src[full + r];
                for (; r < w; r++) d[r] = 0f;
            }
        }
    }

    // n is 8, 16 or 32: whole 256-bit vectors.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRun(float* src, float* dst, int n)
    {
        for (int j = 0; j < n; j += 8) Vector256.Store(Vector256.Load(src + j), dst + j);
    }
}
