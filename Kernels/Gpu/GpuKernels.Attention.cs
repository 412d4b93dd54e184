using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Fused scaled dot-product attention on the GPU: the dispatch for both paths (AttentionForward,
// AttentionBackward below), RowDot, and the long-sequence fallback kernels.
//
// Which path runs. Heads with N <= 128 keys whose K rows and a chunk of scores fit 32 KB of
// shared memory (AttentionSmallKernels.Fits: every ViT preset, N = 17 to 65 with d = 32 or 64)
// take the register-tiled kernels of GpuKernels.AttentionSmall.cs: that is the path the model
// runs, and the file to read first. Everything else (a longer sequence, such as the 257 tokens
// of 2 x 2 patches on a 32 x 32 image, or a head too wide for 32 KB) takes the kernels of this
// file, which work for any N and d <= 128. Both paths use RowDot for D (below) and the same
// dropout hash.
//
// Why this fallback exists, and why it is not the main path: the fast path keeps a whole head's
// K (or V, Q, dO) in shared memory, which bounds N. These kernels stream the other side in
// 32-row tiles with an online softmax, so their shared memory does not grow with N. At ViT sizes
// they are slow: each group re-stages the head's whole K and V for only 8 query rows, and every
// score is a scalar dot product with two shared loads per FMA (docs/kernels.md, SASS: 50 LDS for
// 40 FFMA in the hot loop). On an H100 this design ran 2-3x slower than the unfused path at
// N = 65 (docs/log/2026-performance-log.md, H100 runs 1-4) until the fast path took those sizes.
//
// Twins: the CPU kernel is Kernels/Cpu/CpuKernels.Attention.cs; the float64 reference is
// Tests/Reference/ReferenceKernels.Attention.cs, which computes the backward pass by the plain
// chain rule, without the identity for D below, so a kernel that gets it wrong disagrees.
//
// Threading (the four kernels of this file): grid (ceil(N / 8), BH), group 256 = 8 warps; each
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
// Backward, D first. With s_ij = scale q_i . k_j, P_ij = exp(s_ij - lse_i) (recomputed from the
// saved lse), M_ij the dropout factor (0 or 1 / (1 - p); 1 without dropout) and
// o_i = sum_j M_ij P_ij v_j, the gradient reaching P is dP_ij = M_ij dO_i . v_j, and the softmax
// backward is dS_ij = P_ij (dP_ij - D_i) with D_i = sum_k P_ik dP_ik. That row sum needs every
// key, but
//   D_i = sum_k P_ik M_ik (dO_i . v_k) = dO_i . (sum_k M_ik P_ik v_k) = dO_i . o_i,
// so RowDot computes it once per row from dO and o (d products, one warp per row) before either
// path's backward kernels, and each of them forms dS_ij from its own P_ij and dP_ij alone:
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
public sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnRowDot;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnDq;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnDkDv;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnSmallForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnSmallDq;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnSmallDkDv;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnSmallBackward;

    private static AttentionArgs AttnArgs(int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout)
    {
        if (d > AttentionKernels.MaxHeadDim)
            throw new ArgumentOutOfRangeException(nameof(d), $"the GPU attention kernels support head dimensions up to {AttentionKernels.MaxHeadDim}, got {d}");
        var l = layout ?? AttentionLayout.Dense(n, d);
        return new AttentionArgs(bh, n, d, scale, dropoutP, seed, dropoutP > 0f ? 1f / (1f - dropoutP) : 1f,
            l.Heads, l.InBatch, l.InRow, l.OutBatch, l.OutRow);
    }

    private static KernelConfig AttnGrid(int bh, int n) =>
        new(new Index2D((n + WarpsPerGroup - 1) / WarpsPerGroup, bh), new Index2D(GroupSize, 1));

    // The fast path (GpuKernels.AttentionSmall.cs): one group of 128 per (chunk of rows, bh).
    private static KernelConfig SmallGrid(int bh, int n, int d) =>
        new(new Index2D(AttentionSmallKernels.SmallGeometry(n, d).Chunks, bh), new Index2D(AttentionSmallKernels.GroupSize, 1));

    public void AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null)
    {
        if (bh == 0 || n == 0) return;
        var a = AttnArgs(bh, n, d, scale, dropoutP, seed, layout);
        if (AttentionSmallKernels.Fits(n, d))
        {
            (_attnSmallForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionSmallKernels.Forward))(
                SmallGrid(bh, n, d), V(q), V(k), V(v), V(o), V(lse), a);
            return;
        }
        (_attnForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.Forward))(
            AttnGrid(bh, n), V(q), V(k), V(v), V(o), V(lse), a);
    }

    public void AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null)
    {
        if (bh == 0 || n == 0) return;
        var a = AttnArgs(bh, n, d, scale, dropoutP, seed, layout);
        var rowDot = Scratch("attention-D", bh * n);
        (_attnRowDot ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.RowDot))(
            WarpPerRow(bh * n), V(dO), V(o), rowDot, a);
        // The fast path's Dq and DkDv halves run as one grid (AttentionSmallKernels.Backward) for
        // head dimensions above 32 and one after the other otherwise: on an H200 (B = 128, N = 65;
        // docs/log/2026-performance-log.md, run 7) one launch was 1.16x (H = 3) and 1.04x (H = 6)
        // faster at d = 64, but 0.93x (H = 12) and 0.95x (H = 4) at d = 32, the same in two repeats.
        // Both modes run in training (vit-tiny has d = 64, vit-micro d = 32), so both are kept.
        bool oneLaunch = d > 32;
        if (AttentionSmallKernels.Fits(n, d) && oneLaunch)
        {
            var g = AttentionSmallKernels.SmallGeometry(n, d);
            (_attnSmallBackward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionSmallKernels.Backward))(
                new KernelConfig(new Index2D(2 * g.Chunks, bh), new Index2D(AttentionSmallKernels.GroupSize, 1)),
                V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dq), V(dk), V(dv), a);
            return;
        }
        if (AttentionSmallKernels.Fits(n, d))
        {
            (_attnSmallDq ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionSmallKernels.BackwardDq))(
                SmallGrid(bh, n, d), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dq), a);
            (_attnSmallDkDv ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionSmallKernels.BackwardDkDv))(
                SmallGrid(bh, n, d), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dk), V(dv), a);
            return;
        }
        (_attnDq ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.BackwardDq))(
            AttnGrid(bh, n), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dq), a);
        (_attnDkDv ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.BackwardDkDv))(
            AttnGrid(bh, n), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dk), V(dv), a);
    }
}

/// <summary>Attention shape, hyper-parameters and <see cref="AttentionLayout"/> as one kernel parameter.</summary>
public readonly record struct AttentionArgs(int BH, int N, int D, float Scale, float DropoutP, uint Seed, float KeepScale,
    int Heads, int InBatch, int InRow, int OutBatch, int OutRow);

/// <summary>The kernels of GpuKernels.Attention.cs.</summary>
public static class AttentionKernels
{
    public const int MaxHeadDim = 128;
    private const int T = GpuKernels.WarpSize;        // tile length: one element per lane
    private const int Pad = MaxHeadDim + 1;           // padded row stride of [32][d] tiles
    private const int Rows = GpuKernels.WarpsPerGroup;

    // Row 0 of pair h in q, k, v, dq, dk, dv (rows InRow apart), and in o, dO (rows OutRow apart):
    // AttentionLayout.InBase / OutBase, written out because kernels take the flat AttentionArgs.
    public static int InHead(in AttentionArgs a, int h) => h / a.Heads * a.InBatch + h % a.Heads * a.D;
    public static int OutHead(in AttentionArgs a, int h) => h / a.Heads * a.OutBatch + h % a.Heads * a.D;

    // keep / (1 - p) for element (i, j) of head h, or 1 without dropout.
    private static float Keep(in AttentionArgs a, int h, int i, int j) =>
        a.DropoutP > 0f
            ? (KernelMath.DropoutKeep(a.Seed, ((uint)h * (uint)a.N + (uint)i) * (uint)a.N + (uint)j, a.DropoutP) ? a.KeepScale : 0f)
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
        int h = Grid.IdxY, i = Grid.IdxX * Rows + Warp.WarpIdx, lane = Warp.LaneIdx;
        bool valid = i < a.N;
        int head = InHead(a, h), wo = Warp.WarpIdx * T;
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
            Ws[wo + lane] = j < a.N && valid ? p * Keep(a, h, i, j) : 0f;
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
        int at = OutHead(a, h) + i * a.OutRow + lane;
        if (lane < a.D) o[at] = o0 * inv;
        if (lane + 32 < a.D) o[at + 32] = o1 * inv;
        if (lane + 64 < a.D) o[at + 64] = o2 * inv;
        if (lane + 96 < a.D) o[at + 96] = o3 * inv;
        if (lane == 0) lse[h * a.N + i] = m + MathF.Log(l);
    }

    // result[bh N + i] = x_i . y_i for row i of pair bh of two o-layout matrices (dO and o): one warp per row.
    [GpuKernel]
    public static void RowDot(ArrayView<float> x, ArrayView<float> y, ArrayView<float> result, AttentionArgs a)
    {
        int row = Grid.IdxX * Rows + Warp.WarpIdx;
        bool valid = row < a.BH * a.N;
        float s = 0f;
        if (valid)
        {
            int h = row / a.N, at = OutHead(a, h) + (row - h * a.N) * a.OutRow;
            for (int c = Warp.LaneIdx; c < a.D; c += T) s += x[at + c] * y[at + c];
        }
        s = WarpMath.Sum(s);
        if (valid && Warp.LaneIdx == 0) result[row] = s;
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
        int h = Grid.IdxY, i = Grid.IdxX * Rows + Warp.WarpIdx, lane = Warp.LaneIdx;
        bool valid = i < a.N;
        int head = InHead(a, h), wo = Warp.WarpIdx * T;
        LoadRow(q, head, a.InRow, i, valid, a, a.Scale, Qs);
        LoadRow(dO, OutHead(a, h), a.OutRow, i, valid, a, 1f, Gs);
        float lsei = valid ? lse[h * a.N + i] : 0f, Di = valid ? rowDot[h * a.N + i] : 0f;

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
                float dp = Keep(a, h, i, j) * Dot(Gs, Vs, a.D);
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
        int h = Grid.IdxY, j = Grid.IdxX * Rows + Warp.WarpIdx, lane = Warp.LaneIdx;
        bool valid = j < a.N;
        int head = InHead(a, h), outHead = OutHead(a, h), wo = Warp.WarpIdx * T;
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
                Ls[Group.IdxX] = r < a.N ? lse[h * a.N + r] : 0f;
                Ds[Group.IdxX] = r < a.N ? rowDot[h * a.N + r] : 0f;
            }
            Group.Barrier();

            int i = i0 + lane;
            float cv = 0f, cs = 0f;
            if (valid && i < a.N)
            {
                float p = MathF.Exp(Dot(Kr, Qs, a.D) - Ls[lane]);
                float keep = Keep(a, h, i, j);
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
