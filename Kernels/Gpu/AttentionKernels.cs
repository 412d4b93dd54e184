using System.Runtime.CompilerServices;
using ILGPU;

namespace ViTScratch.Kernels.Gpu;

// The main attention path: fused attention for ViT-sized heads (N <= 128 keys, the whole head's
// K or V rows fit in shared memory next to a chunk of scores), the path every ViT preset runs;
// and RowDot, the D of the backward pass for both paths. GpuKernels.Attention.cs holds the
// dispatch that chooses this path (Fits) and the derivation of D; AttentionLongKernels.cs the
// warp-per-row fallback that takes longer sequences.
//
// Twins: the CPU kernel is Kernels/Cpu/CpuKernels.Attention.cs (the same products per block of
// query rows, on SmallGemm, with the same D); the float64 reference is
// Tests/Reference/ReferenceKernels.Attention.cs, which computes the backward pass by the plain
// chain rule.
//
// Algorithm: a group owns one chunk of R <= 32 rows (query rows in Forward and Dq, key rows in
// DkDv) of one (batch, head) and does the chunk's part of attention as small register-tiled
// matmuls over shared memory, like the matmul kernel (MatMulPipelinedKernels.cs): each thread computes a 4 x 4 block of a
// product from Quad (16-byte, LDS.128) loads, 8 loads per 64 FMAs. Scores never reach global
// memory; the chunk's R x N score block lives in shared memory, so the softmax is exact (no
// online rescaling) and P can be reused by the next product.
//
//   Forward (chunk of query rows i):  S = (scale Q_c) Kᵀ      [R x N]   "NT" product
//                                     P = softmax rows of S (warp per row, shuffles), lse saved,
//                                     P *= keep (dropout)
//                                     O_c = P V               [R x d]   "NN" product
//   Dq (chunk of query rows i):       P = exp((scale Q_c) Kᵀ - lse)          (NT)
//                                     dS = scale P (keep dO_c Vᵀ - D)         (NT, in place)
//                                     dQ_c += dS K                             (NN)
//   DkDv (chunk of key rows j):       Pᵀ = exp((scale K_c) Qᵀ - lse)          (NT)
//                                     dSᵀ = scale Pᵀ (keep V_c dOᵀ - D), Pkᵀ = keep Pᵀ   (NT)
//                                     dV_c += Pkᵀ dO,  dK_c += dSᵀ Q          (NN)
//   Dq and DkDv split the gradient so every output element has one writer (no atomics); the
//   price is that both recompute P.
//
// D, the row sum the softmax backward needs. With P_ij = exp(s_ij - lse_i) (s_ij the scaled
// score), M_ij = keep_ij (0 or 1 / (1 - p); 1 without dropout) and o_i = sum_j M_ij P_ij v_j, the
// gradient reaching P is dP_ij = M_ij dO_i . v_j, and the softmax backward is
// dS_ij = P_ij (dP_ij - D_i) with D_i = sum_k P_ik dP_ik, a sum over all N keys. But
//   D_i = sum_k P_ik M_ik (dO_i . v_k) = dO_i . (sum_k M_ik P_ik v_k) = dO_i . o_i,
// so AttentionLongKernels.RowDot computes D_i from dO and o (d products per row) before these
// kernels run, and each of them forms dS from its own block of P and dP alone: Dq a chunk of
// query rows (dS = scale P (keep dP - D), D per row), DkDv a chunk of key rows (dSᵀ, D per
// column). That is what lets the two halves work on different chunks with no shared row sums.
//
// The two micro-kernels. NT: acc[r][t] = sum_k A[4 rb + r][k] B[cb + t C][k] with both operands
// rows of d (or N) floats; a thread's 4 columns are C apart (C = column blocks), so the 32 lanes
// of a warp read 32 consecutive B rows: with a row stride of an odd number of Quads the 8 lanes
// of each LDS.128 phase hit 8 different 16-byte bank groups. NN: acc[r][t] = sum_k A[4 rb + r][k]
// B[k][4 cq + t]: B rows are read as Quads of 4 consecutive columns, consecutive lanes take
// consecutive Quads (no conflict). A rows are shared by the lanes of a block row (broadcast).
//
// Geometry (GeometryFor): N padded to Np = 4 ceil(N / 4); d padded to a multiple of 8 floats
// (so the row stride dQuadsPadded + 1 in Quads is odd); chunk rows R = multiple of 4, the chunks balanced
// (N = 65 gives 3 chunks of 24, 24, 17 rows, not 32, 32, 1) and small enough that the R/4 x Np/4
// score blocks fit the 128 threads once (DkDv holds its block in registers across a barrier).
// Launch: grid (chunks, BH), group 128 = 4 warps; for d > 32 the backward pass runs Dq and DkDv
// as one launch of grid (2 chunks, BH) (Backward).
// Shared memory, one static 32 KB array carved at run time (in Quads):
//   X  Np x (dQuadsPadded + 1)    the whole head's K, V, Q or dO, one at a time
//   A  R x max(dQuadsPadded + 1, Np/4 + 1)
//                                 the chunk's Q, dO, K or V rows, or DkDv's dSᵀ
//   S  R x (Np/4 + 1)             the chunk's scores / P / dS
// e.g. N = 65, d = 64: 1156 + 432 + 432 Quads = 31.6 KB; this path is taken when the three
// fit 32 KB (N <= 128), which keeps 6 groups (24 warps) resident per H100 SM.
// Zero padding: pad columns of d-rows and pad rows of X are staged as 0 so the NT sums and the NN
// sums over padded keys add nothing; P and dS are written as 0 outside the N x N matrix.
internal static class AttentionKernels
{
    public const int GroupSize = 128;
    private const int Warps = GroupSize / GpuKernels.WarpSize;
    public const int BudgetFloats = 8192;   // 32 KB
    public const int MaxN = 128;            // softmax: at most 4 keys per lane
    private const int MaxChunk = 32;

    // Row 0 of pair bh in q, k, v, dq, dk, dv (rows InRow apart), and in o, dO (rows OutRow apart):
    // AttentionLayout.InBase / OutBase, written out because kernels take the flat AttentionArgs.
    public static int InHead(in AttentionArgs a, int bh) => bh / a.Heads * a.InBatch + bh % a.Heads * a.D;
    public static int OutHead(in AttentionArgs a, int bh) => bh / a.Heads * a.OutBatch + bh % a.Heads * a.D;

    // result[bh N + i] = x_i . y_i for row i of pair bh of two o-layout matrices (dO and o): one warp per row.
    [GpuKernel]
    public static void RowDot(ArrayView<float> x, ArrayView<float> y, ArrayView<float> result, AttentionArgs a)
    {
        int row = Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx;
        bool valid = row < a.BH * a.N;
        float s = 0f;
        if (valid)
        {
            int bh = row / a.N, at = OutHead(a, bh) + (row - bh * a.N) * a.OutRow;
            for (int c = Warp.LaneIdx; c < a.D; c += GpuKernels.WarpSize) s += x[at + c] * y[at + c];
        }
        s = WarpMath.Sum(s);
        if (valid && Warp.LaneIdx == 0) result[row] = s;
    }

    /// <summary>The shared-memory layout of one launch; computed identically on host and device.</summary>
    public readonly record struct Geometry(int R, int Chunks, int Np4, int DQuadsPadded, int SD, int SN, int XOff, int AOff, int SOff, int Quads);

    public static Geometry GeometryFor(int n, int d)
    {
        int np4 = (n + 3) / 4;
        int dQuadsPadded = ((d + 7) / 8) * 2;   // a d-row in Quads, padded to an even count (8 floats)
        int rMax = 4 * (GroupSize / np4);
        if (rMax > MaxChunk) rMax = MaxChunk;
        if (rMax < 4) rMax = 4;
        int chunks = (n + rMax - 1) / rMax;
        int per = (n + chunks - 1) / chunks;
        int r = ((per + 3) / 4) * 4;
        int sd = dQuadsPadded + 1, sn = np4 + 1;
        int aStride = sd > sn ? sd : sn;
        int xOff = 0, aOff = 4 * np4 * sd, sOff = aOff + r * aStride;
        return new Geometry(r, chunks, np4, dQuadsPadded, sd, sn, xOff, aOff, sOff, sOff + r * sn);
    }

    /// <summary>Whether attention over n keys of head dimension d takes this path.</summary>
    public static bool Fits(int n, int d) => n >= 1 && n <= MaxN && d >= 1 && 4 * GeometryFor(n, d).Quads <= BudgetFloats;

    // A 4 x 4 block of results held in registers.
    private struct Block
    {
        public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;
    }

    // NT: acc[r][t] = sum over kq Quads of A[a + r sa] . B[b + t bStep] (all offsets in Quads).
    // One FFMA per product into the accumulator (a 4-term sum first would cost an FMUL and FADD).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Block NT(ArrayView<Quad> s4, int a, int sa, int b, int bStep, int kq)
    {
        Block z = default;
        for (int k = 0; k < kq; k++)
        {
            Quad x0 = s4[a + k], x1 = s4[a + sa + k], x2 = s4[a + 2 * sa + k], x3 = s4[a + 3 * sa + k];
            Quad y0 = s4[b + k], y1 = s4[b + bStep + k], y2 = s4[b + 2 * bStep + k], y3 = s4[b + 3 * bStep + k];
            z.C00 += x0.X * y0.X; z.C00 += x0.Y * y0.Y; z.C00 += x0.Z * y0.Z; z.C00 += x0.W * y0.W;
            z.C01 += x0.X * y1.X; z.C01 += x0.Y * y1.Y; z.C01 += x0.Z * y1.Z; z.C01 += x0.W * y1.W;
            z.C02 += x0.X * y2.X; z.C02 += x0.Y * y2.Y; z.C02 += x0.Z * y2.Z; z.C02 += x0.W * y2.W;
            z.C03 += x0.X * y3.X; z.C03 += x0.Y * y3.Y; z.C03 += x0.Z * y3.Z; z.C03 += x0.W * y3.W;
            z.C10 += x1.X * y0.X; z.C10 += x1.Y * y0.Y; z.C10 += x1.Z * y0.Z; z.C10 += x1.W * y0.W;
            z.C11 += x1.X * y1.X; z.C11 += x1.Y * y1.Y; z.C11 += x1.Z * y1.Z; z.C11 += x1.W * y1.W;
            z.C12 += x1.X * y2.X; z.C12 += x1.Y * y2.Y; z.C12 += x1.Z * y2.Z; z.C12 += x1.W * y2.W;
            z.C13 += x1.X * y3.X; z.C13 += x1.Y * y3.Y; z.C13 += x1.Z * y3.Z; z.C13 += x1.W * y3.W;
            z.C20 += x2.X * y0.X; z.C20 += x2.Y * y0.Y; z.C20 += x2.Z * y0.Z; z.C20 += x2.W * y0.W;
            z.C21 += x2.X * y1.X; z.C21 += x2.Y * y1.Y; z.C21 += x2.Z * y1.Z; z.C21 += x2.W * y1.W;
            z.C22 += x2.X * y2.X; z.C22 += x2.Y * y2.Y; z.C22 += x2.Z * y2.Z; z.C22 += x2.W * y2.W;
            z.C23 += x2.X * y3.X; z.C23 += x2.Y * y3.Y; z.C23 += x2.Z * y3.Z; z.C23 += x2.W * y3.W;
            z.C30 += x3.X * y0.X; z.C30 += x3.Y * y0.Y; z.C30 += x3.Z * y0.Z; z.C30 += x3.W * y0.W;
            z.C31 += x3.X * y1.X; z.C31 += x3.Y * y1.Y; z.C31 += x3.Z * y1.Z; z.C31 += x3.W * y1.W;
            z.C32 += x3.X * y2.X; z.C32 += x3.Y * y2.Y; z.C32 += x3.Z * y2.Z; z.C32 += x3.W * y2.W;
            z.C33 += x3.X * y3.X; z.C33 += x3.Y * y3.Y; z.C33 += x3.Z * y3.Z; z.C33 += x3.W * y3.W;
        }
        return z;
    }

    // NN: acc[r][t] = sum over k < 4 kq of A[a + r sa] (float k of the row) * B[b + k sb] (float t).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Block NN(ArrayView<Quad> s4, int a, int sa, int b, int sb, int kq)
    {
        Block z = default;
        for (int k = 0; k < kq; k++)
        {
            Quad x0 = s4[a + k], x1 = s4[a + sa + k], x2 = s4[a + 2 * sa + k], x3 = s4[a + 3 * sa + k];
            int bo = b + 4 * k * sb;
            Quad y0 = s4[bo], y1 = s4[bo + sb], y2 = s4[bo + 2 * sb], y3 = s4[bo + 3 * sb];
            z.C00 += x0.X * y0.X; z.C00 += x0.Y * y1.X; z.C00 += x0.Z * y2.X; z.C00 += x0.W * y3.X;
            z.C01 += x0.X * y0.Y; z.C01 += x0.Y * y1.Y; z.C01 += x0.Z * y2.Y; z.C01 += x0.W * y3.Y;
            z.C02 += x0.X * y0.Z; z.C02 += x0.Y * y1.Z; z.C02 += x0.Z * y2.Z; z.C02 += x0.W * y3.Z;
            z.C03 += x0.X * y0.W; z.C03 += x0.Y * y1.W; z.C03 += x0.Z * y2.W; z.C03 += x0.W * y3.W;
            z.C10 += x1.X * y0.X; z.C10 += x1.Y * y1.X; z.C10 += x1.Z * y2.X; z.C10 += x1.W * y3.X;
            z.C11 += x1.X * y0.Y; z.C11 += x1.Y * y1.Y; z.C11 += x1.Z * y2.Y; z.C11 += x1.W * y3.Y;
            z.C12 += x1.X * y0.Z; z.C12 += x1.Y * y1.Z; z.C12 += x1.Z * y2.Z; z.C12 += x1.W * y3.Z;
            z.C13 += x1.X * y0.W; z.C13 += x1.Y * y1.W; z.C13 += x1.Z * y2.W; z.C13 += x1.W * y3.W;
            z.C20 += x2.X * y0.X; z.C20 += x2.Y * y1.X; z.C20 += x2.Z * y2.X; z.C20 += x2.W * y3.X;
            z.C21 += x2.X * y0.Y; z.C21 += x2.Y * y1.Y; z.C21 += x2.Z * y2.Y; z.C21 += x2.W * y3.Y;
            z.C22 += x2.X * y0.Z; z.C22 += x2.Y * y1.Z; z.C22 += x2.Z * y2.Z; z.C22 += x2.W * y3.Z;
            z.C23 += x2.X * y0.W; z.C23 += x2.Y * y1.W; z.C23 += x2.Z * y2.W; z.C23 += x2.W * y3.W;
            z.C30 += x3.X * y0.X; z.C30 += x3.Y * y1.X; z.C30 += x3.Z * y2.X; z.C30 += x3.W * y3.X;
            z.C31 += x3.X * y0.Y; z.C31 += x3.Y * y1.Y; z.C31 += x3.Z * y2.Y; z.C31 += x3.W * y3.Y;
            z.C32 += x3.X * y0.Z; z.C32 += x3.Y * y1.Z; z.C32 += x3.Z * y2.Z; z.C32 += x3.W * y3.Z;
            z.C33 += x3.X * y0.W; z.C33 += x3.Y * y1.W; z.C33 += x3.Z * y2.W; z.C33 += x3.W * y3.W;
        }
        return z;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Get(in Block z, int r, int t)
    {
        int e = 4 * r + t;
        return e == 0 ? z.C00 : e == 1 ? z.C01 : e == 2 ? z.C02 : e == 3 ? z.C03
             : e == 4 ? z.C10 : e == 5 ? z.C11 : e == 6 ? z.C12 : e == 7 ? z.C13
             : e == 8 ? z.C20 : e == 9 ? z.C21 : e == 10 ? z.C22 : e == 11 ? z.C23
             : e == 12 ? z.C30 : e == 13 ? z.C31 : e == 14 ? z.C32 : z.C33;
    }

    // Copies `rows` rows of d floats, srcRow apart in global memory from srcBase (rows past `valid`
    // as 0), into shared rows of stride `stride` floats at `dst`, times `scale`; columns
    // d .. 4 dQuadsPadded are zeroed. Thread t walks elements t, t + 128, ... of the rows taken end to end
    // (coalesced within a row; the whole span when srcRow = d), four loads in flight per iteration
    // (ILGPU does not unroll); the (row, column) of an element advances by a fixed step instead of
    // a division per element.
    private static void Stage(ArrayView<float> src, int srcBase, int srcRow, int rows, int valid, int d, int dQuadsPadded, float scale,
        ArrayView<float> sh, int dst, int stride)
    {
        int tid = Group.IdxX, total = valid * d;
        int r = tid / d, c = tid - r * d;
        int dr = GroupSize / d, dc = GroupSize - dr * d;
        for (int t = tid; t < total; t += 4 * GroupSize)
        {
            // (row, column) of this thread's four elements, GroupSize apart in row-major order.
            int r1 = r + dr, c1 = c + dc; if (c1 >= d) { c1 -= d; r1++; }
            int r2 = r1 + dr, c2 = c1 + dc; if (c2 >= d) { c2 -= d; r2++; }
            int r3 = r2 + dr, c3 = c2 + dc; if (c3 >= d) { c3 -= d; r3++; }
            float v0 = src[srcBase + r * srcRow + c] * scale;
            float v1 = t + GroupSize < total ? src[srcBase + r1 * srcRow + c1] * scale : 0f;
            float v2 = t + 2 * GroupSize < total ? src[srcBase + r2 * srcRow + c2] * scale : 0f;
            float v3 = t + 3 * GroupSize < total ? src[srcBase + r3 * srcRow + c3] * scale : 0f;
            sh[dst + r * stride + c] = v0;
            if (t + GroupSize < total) sh[dst + r1 * stride + c1] = v1;
            if (t + 2 * GroupSize < total) sh[dst + r2 * stride + c2] = v2;
            if (t + 3 * GroupSize < total) sh[dst + r3 * stride + c3] = v3;
            r = r3 + dr; c = c3 + dc; if (c >= d) { c -= d; r++; }
        }
        // Pad columns of the valid rows, then whole pad rows.
        int padCols = 4 * dQuadsPadded - d;
        for (int e = tid; e < valid * padCols; e += GroupSize)
        {
            int rr = e / padCols;
            sh[dst + rr * stride + d + e - rr * padCols] = 0f;
        }
        int width = 4 * dQuadsPadded;
        for (int e = tid; e < (rows - valid) * width; e += GroupSize)
        {
            int rr = e / width;
            sh[dst + (valid + rr) * stride + e - rr * width] = 0f;
        }
    }

    // keep / (1 - p) for element (i, j) of pair bh, or 1 without dropout (the CPU backend's hash).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Keep(in AttentionArgs a, int bh, int i, int j) =>
        a.DropoutP > 0f
            ? (KernelMath.DropoutKeep(a.Seed, ((uint)bh * (uint)a.N + (uint)i) * (uint)a.N + (uint)j, a.DropoutP) ? a.KeepScale : 0f)
            : 1f;

    [GpuKernel]
    public static void Forward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, AttentionArgs a)
    {
        var sh4 = SharedMemory.Allocate<Quad>(BudgetFloats / 4);
        var sh = sh4.Cast<float>();
        var g = GeometryFor(a.N, a.D);
        int bh = Grid.IdxY, i0 = Grid.IdxX * g.R, tid = Group.IdxX;
        int rows = Math.Min(g.R, a.N - i0), head = InHead(a, bh), ld = a.InRow;
        int rb = g.R / 4, C = g.Np4, np = 4 * g.Np4;

        Stage(q, head + i0 * ld, ld, g.R, rows, a.D, g.DQuadsPadded, a.Scale, sh, 4 * g.AOff, 4 * g.SD);   // A = scale Q_c
        Stage(k, head, ld, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);                    // X = K
        Group.Barrier();

        // S = A Xᵀ [R x Np]: block (r4, cb) holds rows 4 r4 .. +3, columns cb + t C.
        for (int blk = tid; blk < rb * C; blk += GroupSize)
        {
            int r4 = blk / C, cb = blk - r4 * C;
            var z = NT(sh4, g.AOff + 4 * r4 * g.SD, g.SD, g.XOff + cb * g.SD, C * g.SD, g.DQuadsPadded);
            int s = 4 * g.SOff + 4 * r4 * 4 * g.SN + cb;
            for (int r = 0; r < 4; r++)
                for (int t = 0; t < 4; t++)
                    sh[s + r * 4 * g.SN + t * C] = Get(z, r, t);
        }
        Group.Barrier();

        // X = V (K is consumed) while the warps turn S rows into P: warp per row, lane j holds
        // keys j, j + 32, j + 64, j + 96.
        Stage(v, head, ld, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);
        int lane = Warp.LaneIdx;
        for (int r = Warp.WarpIdx; r < g.R; r += Warps)
        {
            int row = 4 * g.SOff + r * 4 * g.SN, i = i0 + r;
            int j0 = lane, j1 = lane + 32, j2 = lane + 64, j3 = lane + 96;
            float s0 = j0 < a.N ? sh[row + j0] : float.NegativeInfinity;
            float s1 = j1 < a.N ? sh[row + j1] : float.NegativeInfinity;
            float s2 = j2 < a.N ? sh[row + j2] : float.NegativeInfinity;
            float s3 = j3 < a.N ? sh[row + j3] : float.NegativeInfinity;
            float m = WarpMath.Max(MathF.Max(MathF.Max(s0, s1), MathF.Max(s2, s3)));
            float e0 = j0 < a.N ? MathF.Exp(s0 - m) : 0f, e1 = j1 < a.N ? MathF.Exp(s1 - m) : 0f;
            float e2 = j2 < a.N ? MathF.Exp(s2 - m) : 0f, e3 = j3 < a.N ? MathF.Exp(s3 - m) : 0f;
            float l = WarpMath.Sum(e0 + e1 + e2 + e3);
            float inv = 1f / l;
            bool valid = r < rows;
            if (j0 < np) sh[row + j0] = valid && j0 < a.N ? e0 * inv * Keep(a, bh, i, j0) : 0f;
            if (j1 < np) sh[row + j1] = valid && j1 < a.N ? e1 * inv * Keep(a, bh, i, j1) : 0f;
            if (j2 < np) sh[row + j2] = valid && j2 < a.N ? e2 * inv * Keep(a, bh, i, j2) : 0f;
            if (j3 < np) sh[row + j3] = valid && j3 < a.N ? e3 * inv * Keep(a, bh, i, j3) : 0f;
            if (valid && lane == 0) lse[bh * a.N + i] = m + MathF.Log(l);
        }
        Group.Barrier();

        // O_c = P V [R x d]: block (r4, cq) holds rows 4 r4 .. +3, columns 4 cq .. +3.
        int dq = (a.D + 3) / 4;
        for (int blk = tid; blk < rb * dq; blk += GroupSize)
        {
            int r4 = blk / dq, cq = blk - r4 * dq;
            var z = NN(sh4, g.SOff + 4 * r4 * g.SN, g.SN, g.XOff + cq, g.SD, g.Np4);
            for (int r = 0; r < 4; r++)
            {
                if (4 * r4 + r >= rows) break;
                int at = OutHead(a, bh) + (i0 + 4 * r4 + r) * a.OutRow + 4 * cq;
                for (int t = 0; t < 4; t++)
                    if (4 * cq + t < a.D) o[at + t] = Get(z, r, t);
            }
        }
    }

    // The backward pass as one launch: grid x holds the Dq chunks, then the DkDv chunks, of each
    // (batch, head). Why one launch: each half alone is 1.45 waves on an H100 (N = 65: 3 chunks x
    // 384 heads = 1,152 groups, 6 resident per SM), so the partial last wave idles much of the GPU
    // twice (Nsight Compute's estimate: up to 50% of each kernel); together they are 2.9 waves and
    // the Dq and DkDv groups of a head run side by side. Both halves write different outputs, so
    // there is no ordering between them. Measured on an H200 it wins at d = 64 (1.04-1.16x) and
    // loses at d = 32 (0.93-0.95x), so the dispatcher uses it for d > 32 only and runs the two
    // kernels below, the halves alone, otherwise (the rule and its measurement: GpuKernels.AttentionBackward).
    [GpuKernel]
    public static void Backward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> rowDot,
        ArrayView<float> dO, ArrayView<float> dq, ArrayView<float> dk, ArrayView<float> dv, AttentionArgs a)
    {
        var sh4 = SharedMemory.Allocate<Quad>(BudgetFloats / 4);
        int chunks = GeometryFor(a.N, a.D).Chunks;
        if (Grid.IdxX < chunks) DqChunk(Grid.IdxX, sh4, q, k, v, lse, rowDot, dO, dq, a);     // uniform per group
        else DkDvChunk(Grid.IdxX - chunks, sh4, q, k, v, lse, rowDot, dO, dk, dv, a);
    }

    [GpuKernel]
    public static void BackwardDq(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> rowDot,
        ArrayView<float> dO, ArrayView<float> dq, AttentionArgs a) =>
        DqChunk(Grid.IdxX, SharedMemory.Allocate<Quad>(BudgetFloats / 4), q, k, v, lse, rowDot, dO, dq, a);

    [GpuKernel]
    public static void BackwardDkDv(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> rowDot,
        ArrayView<float> dO, ArrayView<float> dk, ArrayView<float> dv, AttentionArgs a) =>
        DkDvChunk(Grid.IdxX, SharedMemory.Allocate<Quad>(BudgetFloats / 4), q, k, v, lse, rowDot, dO, dk, dv, a);

    // dQ for query rows chunk R .. of head Grid.IdxY.
    private static void DqChunk(int chunk, ArrayView<Quad> sh4, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse,
        ArrayView<float> rowDot, ArrayView<float> dO, ArrayView<float> dq, AttentionArgs a)
    {
        var sh = sh4.Cast<float>();
        var g = GeometryFor(a.N, a.D);
        int bh = Grid.IdxY, i0 = chunk * g.R, tid = Group.IdxX;
        int rows = Math.Min(g.R, a.N - i0), head = InHead(a, bh), ld = a.InRow;
        int rb = g.R / 4, C = g.Np4, np = 4 * g.Np4;

        Stage(q, head + i0 * ld, ld, g.R, rows, a.D, g.DQuadsPadded, a.Scale, sh, 4 * g.AOff, 4 * g.SD);
        Stage(k, head, ld, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);
        Group.Barrier();

        // P = exp(S - lse) into the S buffer (0 outside the matrix).
        for (int blk = tid; blk < rb * C; blk += GroupSize)
        {
            int r4 = blk / C, cb = blk - r4 * C;
            var z = NT(sh4, g.AOff + 4 * r4 * g.SD, g.SD, g.XOff + cb * g.SD, C * g.SD, g.DQuadsPadded);
            int s = 4 * g.SOff + 4 * r4 * 4 * g.SN + cb;
            for (int r = 0; r < 4; r++)
            {
                int rr = 4 * r4 + r;
                float l = rr < rows ? lse[bh * a.N + i0 + rr] : 0f;
                for (int t = 0; t < 4; t++)
                    sh[s + r * 4 * g.SN + t * C] = rr < rows && cb + t * C < a.N ? MathF.Exp(Get(z, r, t) - l) : 0f;
            }
        }
        Group.Barrier();

        Stage(dO, OutHead(a, bh) + i0 * a.OutRow, a.OutRow, g.R, rows, a.D, g.DQuadsPadded, 1f, sh, 4 * g.AOff, 4 * g.SD);   // A = dO_c
        Stage(v, head, ld, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);                 // X = V
        Group.Barrier();

        // dS = scale P (keep dP - D), dP = dO_c Vᵀ; each thread rewrites only its own P entries.
        for (int blk = tid; blk < rb * C; blk += GroupSize)
        {
            int r4 = blk / C, cb = blk - r4 * C;
            var z = NT(sh4, g.AOff + 4 * r4 * g.SD, g.SD, g.XOff + cb * g.SD, C * g.SD, g.DQuadsPadded);
            int s = 4 * g.SOff + 4 * r4 * 4 * g.SN + cb;
            for (int r = 0; r < 4; r++)
            {
                int rr = 4 * r4 + r, i = i0 + rr;
                float D = rr < rows ? rowDot[bh * a.N + i] : 0f;
                for (int t = 0; t < 4; t++)
                {
                    int j = cb + t * C, at = s + r * 4 * g.SN + t * C;
                    sh[at] = rr < rows && j < a.N ? sh[at] * (Keep(a, bh, i, j) * Get(z, r, t) - D) * a.Scale : 0f;
                }
            }
        }
        Group.Barrier();

        Stage(k, head, ld, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);                 // X = K again
        Group.Barrier();

        int dQuads = (a.D + 3) / 4;   // a d-row in Quads, unpadded
        for (int blk = tid; blk < rb * dQuads; blk += GroupSize)
        {
            int r4 = blk / dQuads, cq = blk - r4 * dQuads;
            var z = NN(sh4, g.SOff + 4 * r4 * g.SN, g.SN, g.XOff + cq, g.SD, g.Np4);
            for (int r = 0; r < 4; r++)
            {
                if (4 * r4 + r >= rows) break;
                int at = head + (i0 + 4 * r4 + r) * ld + 4 * cq;
                for (int t = 0; t < 4; t++)
                    if (4 * cq + t < a.D) dq[at + t] += Get(z, r, t);
            }
        }
    }

    // dK and dV for key rows chunk R .. of head Grid.IdxY.
    private static void DkDvChunk(int chunk, ArrayView<Quad> sh4, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse,
        ArrayView<float> rowDot, ArrayView<float> dO, ArrayView<float> dk, ArrayView<float> dv, AttentionArgs a)
    {
        var sh = sh4.Cast<float>();
        var g = GeometryFor(a.N, a.D);
        int bh = Grid.IdxY, j0 = chunk * g.R, tid = Group.IdxX;
        int rows = Math.Min(g.R, a.N - j0), head = InHead(a, bh), ld = a.InRow;
        int rb = g.R / 4, C = g.Np4, np = 4 * g.Np4;
        int r4 = tid / C, cb = tid - r4 * C;   // this thread's score block (GeometryFor: rb C <= 128)
        bool mine = tid < rb * C;

        Stage(k, head + j0 * ld, ld, g.R, rows, a.D, g.DQuadsPadded, a.Scale, sh, 4 * g.AOff, 4 * g.SD);   // A = scale K_c
        Stage(q, head, ld, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);                    // X = Q
        Group.Barrier();

        // Pᵀ [R keys x Np queries] = exp(S - lse_i), lse per column.
        int s = 4 * g.SOff + 4 * r4 * 4 * g.SN + cb;
        if (mine)
        {
            var z = NT(sh4, g.AOff + 4 * r4 * g.SD, g.SD, g.XOff + cb * g.SD, C * g.SD, g.DQuadsPadded);
            for (int t = 0; t < 4; t++)
            {
                int i = cb + t * C;
                float l = i < a.N ? lse[bh * a.N + i] : 0f;
                for (int r = 0; r < 4; r++)
                    sh[s + r * 4 * g.SN + t * C] = 4 * r4 + r < rows && i < a.N ? MathF.Exp(Get(z, r, t) - l) : 0f;
            }
        }
        Group.Barrier();

        Stage(v, head + j0 * ld, ld, g.R, rows, a.D, g.DQuadsPadded, 1f, sh, 4 * g.AOff, 4 * g.SD);   // A = V_c
        Stage(dO, OutHead(a, bh), a.OutRow, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);               // X = dO
        Group.Barrier();

        // dPᵀ = V_c dOᵀ; dSᵀ = scale Pᵀ (keep dPᵀ - D_i) and Pkᵀ = keep Pᵀ stay in registers until
        // every thread has finished reading A (V_c), which dSᵀ then overwrites.
        Block ds = default, pk = default;
        if (mine)
        {
            var z = NT(sh4, g.AOff + 4 * r4 * g.SD, g.SD, g.XOff + cb * g.SD, C * g.SD, g.DQuadsPadded);
            float D0 = cb < a.N ? rowDot[bh * a.N + cb] : 0f;
            float D1 = cb + C < a.N ? rowDot[bh * a.N + cb + C] : 0f;
            float D2 = cb + 2 * C < a.N ? rowDot[bh * a.N + cb + 2 * C] : 0f;
            float D3 = cb + 3 * C < a.N ? rowDot[bh * a.N + cb + 3 * C] : 0f;
            int jr = j0 + 4 * r4;
            Grad(a, bh, jr + 0, cb, C, sh, s, z.C00, z.C01, z.C02, z.C03, D0, D1, D2, D3, out ds.C00, out ds.C01, out ds.C02, out ds.C03, out pk.C00, out pk.C01, out pk.C02, out pk.C03);
            Grad(a, bh, jr + 1, cb, C, sh, s + 4 * g.SN, z.C10, z.C11, z.C12, z.C13, D0, D1, D2, D3, out ds.C10, out ds.C11, out ds.C12, out ds.C13, out pk.C10, out pk.C11, out pk.C12, out pk.C13);
            Grad(a, bh, jr + 2, cb, C, sh, s + 8 * g.SN, z.C20, z.C21, z.C22, z.C23, D0, D1, D2, D3, out ds.C20, out ds.C21, out ds.C22, out ds.C23, out pk.C20, out pk.C21, out pk.C22, out pk.C23);
            Grad(a, bh, jr + 3, cb, C, sh, s + 12 * g.SN, z.C30, z.C31, z.C32, z.C33, D0, D1, D2, D3, out ds.C30, out ds.C31, out ds.C32, out ds.C33, out pk.C30, out pk.C31, out pk.C32, out pk.C33);
        }
        Group.Barrier();
        if (mine)
        {
            int d0 = 4 * g.AOff + 4 * r4 * 4 * g.SN + cb;   // dSᵀ in A with the S row stride
            for (int r = 0; r < 4; r++)
                for (int t = 0; t < 4; t++)
                {
                    sh[s + r * 4 * g.SN + t * C] = Get(pk, r, t);
                    sh[d0 + r * 4 * g.SN + t * C] = Get(ds, r, t);
                }
        }
        Group.Barrier();

        // dV_c += Pkᵀ dO (X still holds dO).
        int dQuads = (a.D + 3) / 4;   // a d-row in Quads, unpadded
        for (int blk = tid; blk < rb * dQuads; blk += GroupSize)
        {
            int b4 = blk / dQuads, cq = blk - b4 * dQuads;
            var z = NN(sh4, g.SOff + 4 * b4 * g.SN, g.SN, g.XOff + cq, g.SD, g.Np4);
            AddRows(dv, head, ld, j0, b4, cq, rows, a.D, z);
        }
        Group.Barrier();

        Stage(q, head, ld, np, a.N, a.D, g.DQuadsPadded, 1f, sh, 4 * g.XOff, 4 * g.SD);   // X = Q again
        Group.Barrier();

        // dK_c += dSᵀ Q (scale is inside dS).
        for (int blk = tid; blk < rb * dQuads; blk += GroupSize)
        {
            int b4 = blk / dQuads, cq = blk - b4 * dQuads;
            var z = NN(sh4, g.AOff + 4 * b4 * g.SN, g.SN, g.XOff + cq, g.SD, g.Np4);
            AddRows(dk, head, ld, j0, b4, cq, rows, a.D, z);
        }
    }

    // One row (key j) of the thread's DkDv block: four queries cb + t C.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Grad(in AttentionArgs a, int bh, int j, int cb, int C, ArrayView<float> sh, int s,
        float dp0, float dp1, float dp2, float dp3, float D0, float D1, float D2, float D3,
        out float ds0, out float ds1, out float ds2, out float ds3, out float pk0, out float pk1, out float pk2, out float pk3)
    {
        // P is 0 outside the matrix (rows past N, queries past N), so ds and pk are 0 there too.
        bool jv = j < a.N;
        float p0 = sh[s], p1 = sh[s + C], p2 = sh[s + 2 * C], p3 = sh[s + 3 * C];
        float k0 = jv && cb < a.N ? Keep(a, bh, cb, j) : 0f;
        float k1 = jv && cb + C < a.N ? Keep(a, bh, cb + C, j) : 0f;
        float k2 = jv && cb + 2 * C < a.N ? Keep(a, bh, cb + 2 * C, j) : 0f;
        float k3 = jv && cb + 3 * C < a.N ? Keep(a, bh, cb + 3 * C, j) : 0f;
        ds0 = p0 * (k0 * dp0 - D0) * a.Scale; pk0 = p0 * k0;
        ds1 = p1 * (k1 * dp1 - D1) * a.Scale; pk1 = p1 * k1;
        ds2 = p2 * (k2 * dp2 - D2) * a.Scale; pk2 = p2 * k2;
        ds3 = p3 * (k3 * dp3 - D3) * a.Scale; pk3 = p3 * k3;
    }

    // dst[rows 4 b4 .. +3 of the chunk, columns 4 cq .. +3] += z (within N and d; rows ld apart).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRows(ArrayView<float> dst, int head, int ld, int row0, int b4, int cq, int rows, int d, in Block z)
    {
        for (int r = 0; r < 4; r++)
        {
            if (4 * b4 + r >= rows) break;
            int at = head + (row0 + 4 * b4 + r) * ld + 4 * cq;
            for (int t = 0; t < 4; t++)
                if (4 * cq + t < d) dst[at + t] += Get(z, r, t);
        }
    }
}
