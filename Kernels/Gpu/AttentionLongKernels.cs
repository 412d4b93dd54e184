using ILGPU;

namespace ViTScratch.Kernels.Gpu;

// The long-sequence fallback of fused attention (GpuKernels.Attention.cs dispatches): the kernels
// that take what the main path (AttentionKernels.cs) cannot, a sequence over 128 tokens or a head
// too wide for its 32 KB. No ViT preset at its default patch size runs them.
//
// Why it exists, and why it is not the main path: the main path keeps a whole head's
// K (or V, Q, dO) in shared memory, which bounds N. These kernels stream the other side in
// 32-row tiles with an online softmax, so their shared memory does not grow with N. At ViT sizes
// they are slow: each group re-stages the head's whole K and V for only 8 query rows, and every
// score is a scalar dot product with two shared loads per FMA (docs/kernels.md, SASS: 50 LDS for
// 40 FFMA in the hot loop). On an H100 this design ran 2-3x slower than the unfused path at
// N = 65 (docs/log/2026-performance-log.md, H100 runs 1-4) until the main path took those sizes.
//
// Threading (the three kernels of this file): grid (ceil(N / 8), BH), group 256 = 8 warps; each
// warp owns ONE row (a query row in Forward and BackwardDq, a key row in BackwardDkDv). Within a
// 32-wide tile of the other side, lane j owns tile element j: it computes that score itself as a
// dot product over d read from shared memory. Then the warp combines: max and sum by shuffles;
// for the weighted sum of value rows each lane parks its weight in the warp's 32-float row of
// shared memory (one __syncwarp instead of 32 shuffles), and lane l accumulates output dims l,
// l + 32, l + 64, l + 96 in four registers (so d <= 128) reading the weights back as broadcasts.
//
//   Forward, warp w of the group = query row i:        K tile (32 x d, shared)
//     lane j: s_j = scale q_i . k_j                    +------------------+
//     m' = max(m, max_j s_j); p_j = exp(s_j - m')  <-- | k_j0 ... k_j0+31 |
//     l = l exp(m - m') + sum_j p_j                    +------------------+
//     o = o exp(m - m') + sum_j drop(p_j) v_j          V tile (32 x d, shared)
//   at the end: o /= l, lse_i = m + log l  (online softmax: one pass over keys).
//
// Backward (D_i = dO_i . o_i from RowDot; the derivation is in GpuKernels.Attention.cs):
//   dq_i += scale sum_j dS_ij k_j                       (BackwardDq: warp per query row)
//   dk_j += scale sum_i dS_ij q_i,  dv_j += sum_i M_ij P_ij dO_i   (BackwardDkDv: warp per key)
//   Splitting dq from dk/dv gives every output element exactly one writer: no atomics.
// Dropout: M_ij = DropoutKeep(seed, (bh N + i) N + j, p) / (1 - p), the same hash as the CPU.
//
// Shared memory (floats, d <= 128, rows padded to 129 so lane j's walk along row j hits a
// different bank than lane j + 1):
//   Forward      K 32x129 + V 32x129 + q 8x128 + w 8x32                  = 38.1 KB
//   BackwardDq   K 32x129 + V 32x129 + q 8x128 + dO 8x128 + w 8x32        = 42.3 KB
//   BackwardDkDv Q 32x129 + dO 32x129 + k 8x128 + v 8x128 + 2 x 8x32 + 64 = 43.6 KB (< 48 KB)
internal static class AttentionLongKernels
{
    public const int MaxHeadDim = 128;
    private const int T = GpuKernels.WarpSize;        // tile length: one element per lane
    private const int Pad = MaxHeadDim + 1;           // padded row stride of [32][d] tiles
    private const int Rows = GpuKernels.WarpsPerGroup;

    // keep / (1 - p) for element (i, j) of pair bh, or 1 without dropout.
    private static float Keep(in AttentionArgs a, int bh, int i, int j) =>
        a.DropoutP > 0f
            ? (KernelMath.DropoutKeep(a.Seed, ((uint)bh * (uint)a.N + (uint)i) * (uint)a.N + (uint)j, a.DropoutP) ? a.KeepScale : 0f)
            : 1f;

    // Copies rows [r0, r0 + 32) of an [N, d] matrix (rows ld apart) into tile[32][Pad], zero past row N.
    private static void LoadTile(ArrayView<float> src, int rowBase, int ld, int r0, in AttentionArgs a, ArrayView<float> tile)
    {
        for (int e = Group.IdxX; e < T * a.D; e += GpuKernels.GroupSize)
        {
            int rr = e / a.D, dd = e - rr * a.D, r = r0 + rr;
            tile[rr * Pad + dd] = r < a.N ? src[rowBase + r * ld + dd] : 0f;
        }
    }

    // Copies this warp's row of an [N, d] matrix (rows ld apart) into rowBuf[warp][MaxHeadDim], times `scale`.
    private static void LoadRow(ArrayView<float> src, int rowBase, int ld, int row, bool valid, in AttentionArgs a, float scale, ArrayView<float> rowBuf)
    {
        for (int dd = Warp.LaneIdx; dd < a.D; dd += T)
            rowBuf[Warp.WarpIdx * MaxHeadDim + dd] = valid ? src[rowBase + row * ld + dd] * scale : 0f;
    }

    // sum over dd < d of rowBuf[warp][dd] * tile[lane][dd].
    private static float Dot(ArrayView<float> rowBuf, ArrayView<float> tile, int d)
    {
        int ro = Warp.WarpIdx * MaxHeadDim, to = Warp.LaneIdx * Pad;
        float s = 0f;
        int dd = 0;
        for (; dd + 4 <= d; dd += 4)   // unrolled by 4: ILGPU does not unroll
            s += rowBuf[ro + dd] * tile[to + dd] + rowBuf[ro + dd + 1] * tile[to + dd + 1]
               + rowBuf[ro + dd + 2] * tile[to + dd + 2] + rowBuf[ro + dd + 3] * tile[to + dd + 3];
        for (; dd < d; dd++) s += rowBuf[ro + dd] * tile[to + dd];
        return s;
    }

    [GpuKernel]
    public static void Forward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, AttentionArgs a)
    {
        var Ks = SharedMemory.Allocate<float>(T * Pad);
        var Vs = SharedMemory.Allocate<float>(T * Pad);
        var Qs = SharedMemory.Allocate<float>(Rows * MaxHeadDim);
        var Ws = SharedMemory.Allocate<float>(Rows * T);
        int bh = Grid.IdxY, i = Grid.IdxX * Rows + Warp.WarpIdx, lane = Warp.LaneIdx;
        bool valid = i < a.N;
        int head = AttentionKernels.InHead(a, bh), wo = Warp.WarpIdx * T;
        LoadRow(q, head, a.InRow, i, valid, a, a.Scale, Qs);   // q pre-scaled: s = (scale q) . k

        float m = float.NegativeInfinity, l = 0f, o0 = 0f, o1 = 0f, o2 = 0f, o3 = 0f;
        for (int j0 = 0; j0 < a.N; j0 += T)
        {
            Group.Barrier();   // the previous tile is consumed (and Qs is written)
            LoadTile(k, head, a.InRow, j0, a, Ks);
            LoadTile(v, head, a.InRow, j0, a, Vs);
            Group.Barrier();

            int j = j0 + lane;
            float s = j < a.N ? Dot(Qs, Ks, a.D) : float.NegativeInfinity;
            float mNew = MathF.Max(m, WarpMath.Max(s));
            float p = j < a.N ? MathF.Exp(s - mNew) : 0f;
            float correction = MathF.Exp(m - mNew);    // 0 on the first tile (m = -inf)
            l = l * correction + WarpMath.Sum(p);
            m = mNew;
            Ws[wo + lane] = j < a.N && valid ? p * Keep(a, bh, i, j) : 0f;
            Warp.Barrier();
            o0 *= correction; o1 *= correction; o2 *= correction; o3 *= correction;
            for (int jj = 0; jj < T; jj++)
            {
                float wj = Ws[wo + jj];
                int vo = jj * Pad + lane;
                o0 += wj * Vs[vo];
                o1 += wj * Vs[vo + 32];
                o2 += wj * Vs[vo + 64];
                o3 += wj * Vs[vo + 96];
            }
        }
        if (!valid) return;
        float inv = 1f / l;
        int at = AttentionKernels.OutHead(a, bh) + i * a.OutRow + lane;
        if (lane < a.D) o[at] = o0 * inv;
        if (lane + 32 < a.D) o[at + 32] = o1 * inv;
        if (lane + 64 < a.D) o[at + 64] = o2 * inv;
        if (lane + 96 < a.D) o[at + 96] = o3 * inv;
        if (lane == 0) lse[bh * a.N + i] = m + MathF.Log(l);
    }

    [GpuKernel]
    public static void BackwardDq(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> rowDot,
        ArrayView<float> dO, ArrayView<float> dq, AttentionArgs a)
    {
        var Ks = SharedMemory.Allocate<float>(T * Pad);
        var Vs = SharedMemory.Allocate<float>(T * Pad);
        var Qs = SharedMemory.Allocate<float>(Rows * MaxHeadDim);
        var Gs = SharedMemory.Allocate<float>(Rows * MaxHeadDim);
        var Ws = SharedMemory.Allocate<float>(Rows * T);
        int bh = Grid.IdxY, i = Grid.IdxX * Rows + Warp.WarpIdx, lane = Warp.LaneIdx;
        bool valid = i < a.N;
        int head = AttentionKernels.InHead(a, bh), wo = Warp.WarpIdx * T;
        LoadRow(q, head, a.InRow, i, valid, a, a.Scale, Qs);
        LoadRow(dO, AttentionKernels.OutHead(a, bh), a.OutRow, i, valid, a, 1f, Gs);
        float lsei = valid ? lse[bh * a.N + i] : 0f, Di = valid ? rowDot[bh * a.N + i] : 0f;

        float g0 = 0f, g1 = 0f, g2 = 0f, g3 = 0f;
        for (int j0 = 0; j0 < a.N; j0 += T)
        {
            Group.Barrier();
            LoadTile(k, head, a.InRow, j0, a, Ks);
            LoadTile(v, head, a.InRow, j0, a, Vs);
            Group.Barrier();

            int j = j0 + lane;
            float ds = 0f;
            if (valid && j < a.N)
            {
                float p = MathF.Exp(Dot(Qs, Ks, a.D) - lsei);
                float dp = Keep(a, bh, i, j) * Dot(Gs, Vs, a.D);
                ds = p * (dp - Di) * a.Scale;
            }
            Ws[wo + lane] = ds;
            Warp.Barrier();
            for (int jj = 0; jj < T; jj++)
            {
                float dsj = Ws[wo + jj];
                int ko = jj * Pad + lane;
                g0 += dsj * Ks[ko];
                g1 += dsj * Ks[ko + 32];
                g2 += dsj * Ks[ko + 64];
                g3 += dsj * Ks[ko + 96];
            }
        }
        if (!valid) return;
        int at = head + i * a.InRow + lane;
        if (lane < a.D) dq[at] += g0;
        if (lane + 32 < a.D) dq[at + 32] += g1;
        if (lane + 64 < a.D) dq[at + 64] += g2;
        if (lane + 96 < a.D) dq[at + 96] += g3;
    }

    [GpuKernel]
    public static void BackwardDkDv(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> rowDot,
        ArrayView<float> dO, ArrayView<float> dk, ArrayView<float> dv, AttentionArgs a)
    {
        var Qs = SharedMemory.Allocate<float>(T * Pad);
        var Gs = SharedMemory.Allocate<float>(T * Pad);
        var Kr = SharedMemory.Allocate<float>(Rows * MaxHeadDim);
        var Vr = SharedMemory.Allocate<float>(Rows * MaxHeadDim);
        var Ls = SharedMemory.Allocate<float>(T);
        var Ds = SharedMemory.Allocate<float>(T);
        var Cv = SharedMemory.Allocate<float>(Rows * T);
        var Cs = SharedMemory.Allocate<float>(Rows * T);
        int bh = Grid.IdxY, j = Grid.IdxX * Rows + Warp.WarpIdx, lane = Warp.LaneIdx;
        bool valid = j < a.N;
        int head = AttentionKernels.InHead(a, bh), outHead = AttentionKernels.OutHead(a, bh), wo = Warp.WarpIdx * T;
        LoadRow(k, head, a.InRow, j, valid, a, a.Scale, Kr);   // k pre-scaled: s = q . (scale k)
        LoadRow(v, head, a.InRow, j, valid, a, 1f, Vr);

        float k0 = 0f, k1 = 0f, k2 = 0f, k3 = 0f, v0 = 0f, v1 = 0f, v2 = 0f, v3 = 0f;
        for (int i0 = 0; i0 < a.N; i0 += T)
        {
            Group.Barrier();
            LoadTile(q, head, a.InRow, i0, a, Qs);
            LoadTile(dO, outHead, a.OutRow, i0, a, Gs);
            if (Group.IdxX < T)
            {
                int r = i0 + Group.IdxX;
                Ls[Group.IdxX] = r < a.N ? lse[bh * a.N + r] : 0f;
                Ds[Group.IdxX] = r < a.N ? rowDot[bh * a.N + r] : 0f;
            }
            Group.Barrier();

            int i = i0 + lane;
            float cv = 0f, cs = 0f;
            if (valid && i < a.N)
            {
                float p = MathF.Exp(Dot(Kr, Qs, a.D) - Ls[lane]);
                float keep = Keep(a, bh, i, j);
                float dp = keep * Dot(Vr, Gs, a.D);
                cv = p * keep;
                cs = p * (dp - Ds[lane]) * a.Scale;
            }
            Cv[wo + lane] = cv;
            Cs[wo + lane] = cs;
            Warp.Barrier();
            for (int ii = 0; ii < T; ii++)
            {
                float cvi = Cv[wo + ii], csi = Cs[wo + ii];
                int ro = ii * Pad + lane;
                v0 += cvi * Gs[ro]; v1 += cvi * Gs[ro + 32]; v2 += cvi * Gs[ro + 64]; v3 += cvi * Gs[ro + 96];
                k0 += csi * Qs[ro]; k1 += csi * Qs[ro + 32]; k2 += csi * Qs[ro + 64]; k3 += csi * Qs[ro + 96];
            }
        }
        if (!valid) return;
        int at = head + j * a.InRow + lane;
        if (lane < a.D) { dk[at] += k0; dv[at] += v0; }
        if (lane + 32 < a.D) { dk[at + 32] += k1; dv[at + 32] += v1; }
        if (lane + 64 < a.D) { dk[at + 64] += k2; dv[at + 64] += v2; }
        if (lane + 96 < a.D) { dk[at + 96] += k3; dv[at + 96] += v3; }
    }
}
