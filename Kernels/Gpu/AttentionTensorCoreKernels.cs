using System.Runtime.CompilerServices;
using ILGPU;
using static ViTScratch.Kernels.Gpu.AttentionFragments;

namespace ViTScratch.Kernels.Gpu;

// Fused attention on tensor cores (issue 18, item 3): the path GpuKernels.Attention.cs takes
// instead of AttentionKernels.cs / AttentionLongKernels.cs when IKernels.Precision is Tf32 or
// Bf16 and the head dimension is 32 or 64 (Supports). Same contract as the FP32 kernels: q, k, v,
// dq, dk, dv rows InRow apart, o and dO rows OutRow apart (AttentionLayout), s = scale q.k,
// lse saved in float32 for the backward, dropout M_ij = DropoutKeep(seed, (bh N + i) N + j, p)
// / (1 - p) applied to P after the softmax, dq/dk/dv accumulated with `+=`, D_i = dO_i . o_i
// from AttentionKernels.RowDot (the derivation is in GpuKernels.Attention.cs).
//
// Algorithm: FlashAttention-2. A group of 4 warps owns a block of 64 rows of one (batch, head);
// each warp owns 16 of them (warp w: rows 16w .. 16w + 15 of the block; lane (g, t) = (lane / 4,
// lane % 4) holds rows g and g + 8 of the warp's 16, see AttentionFragments.cs). The other side
// streams through shared memory in steps of 16 rows; every product is a 16 x 16 x d or
// 16 x d x 16 mma chain on the warp's own rows. Scores never leave registers.
//
//   Forward (block of query rows; per step of 16 keys j):
//     S = (scale Q_w) K_jᵀ            two 16x8 accumulators (keys j..j+7, j+8..j+15), d/16 k16 steps
//     m' = max(m, rowmax S); P = exp(S - m'); l = l e^(m - m') + rowsum P    (online softmax; the
//       row max/sum of a lane's four keys per row is finished across its quad by two shuffles)
//     O = O e^(m - m') + round(M P) V_j   P re-laid from accumulator to A operand in registers
//   and at the end o = O / l, lse = m + log l.
//   Backward, recomputation (P = exp(S - lse) from the saved lse; nothing N x N is stored):
//     BackwardDq (block of query rows; per step of 16 keys):
//       S = (scale Q_w) K_jᵀ, P = exp(S - lse_i), dP = dO_w V_jᵀ,
//       dS = scale P (M dP - D_i), dQ_w += round(dS) K_j
//     BackwardDkDv (block of key rows; per step of 16 queries):
//       Sᵀ = (scale K_w) Q_iᵀ, Pᵀ = exp(Sᵀ - lse_i), dPᵀ = V_w dO_iᵀ,
//       dV_w += round(M Pᵀ) dO_i,  dK_w += round(scale Pᵀ (M dPᵀ - D_i)) Q_i
//   Dq and DkDv split the gradient so that every output element has one writer (no atomics), as
//   in the FP32 path; both recompute P.
//
// Re-layout of P (and dS, M Pᵀ) for the second product: the accumulator of an 8-key block is
// used as the A operand of the next mma in the same registers, with the B operand's rows read in
// the matching order (AttentionFragments.AFromAcc / LoadBPaired); no shuffle, no shared memory.
//
// Shared memory (floats; rows of d + 4 floats, so the 8 rows x 4 columns of a fragment load
// fall on 32 different banks), every operand rounded to the format when staged, so a fragment
// load is a plain LDS:
//   Forward       scale Q 64 rows, K 16, V 16               (96 x 68 floats)  26.1 KB at d = 64
//   BackwardDq    scale Q 64, dO 64, K 16, V 16             (160 x 68)        43.5 KB
//   BackwardDkDv  scale K 64, V 64, Q 16, dO 16, lse 16, D 16 (160 x 68 + 32) 43.6 KB  (< 48 KB)
// Launch: grid (ceil(N / 64), BH), group 128. A warp whose 16 rows all lie past N skips the
// products but still takes part in the staging and its barriers.
//
// Error model (the tests' bounds, Tests/TestSupport/AttentionBounds.cs): every mma input is
// rounded to the format once (unit u = 2^-11 for TF32, 2^-8 for BF16), so each product term
// carries a relative error of at most 2u + u^2; the products of rounded inputs are exact and the
// accumulation is float32, whose additions the bounds count at 2U each (U = 2^-24), enough for
// a tensor core that truncates instead of rounding. The softmax statistics (m, l, lse), the
// dropout factors and dS = P (M dP - D) are float32, as in the FP32 path.
internal static class AttentionTensorCoreKernels
{
    public const int GroupSize = 128;
    public const int Rows = 64;        // rows of the group's block: 4 warps x 16
    public const int Step = 16;        // rows of the streamed side per stage
    public const int MaxD = 64;
    private const int MaxStride = MaxD + 4;
    private const int ForwardFloats = (Rows + 2 * Step) * MaxStride;
    private const int BackwardFloats = (2 * Rows + 2 * Step) * MaxStride + 2 * Step;
    private const int Exchange = 6 * GpuKernels.WarpSize * (GroupSize / GpuKernels.WarpSize);   // AttentionFragments.ExchangeSlots(4)

    /// <summary>Whether attention of head dimension d over n keys runs on this path (any n ≥ 1; d = 32 or 64).</summary>
    public static bool Supports(int n, int d) => n >= 1 && (d == 32 || d == 64);

    /// <summary>Groups along x of each kernel's grid (y is BH).</summary>
    public static int Blocks(int n) => (n + Rows - 1) / Rows;

    /// <summary>Static shared memory of each kernel in bytes: what the header's table states.</summary>
    public static int ForwardSharedBytes => 4 * ForwardFloats;
    public static int BackwardSharedBytes => 4 * BackwardFloats;

    [GpuKernel]
    public static void Forward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse,
        AttentionArgs a, int bf16)
    {
        var sh = SharedMemory.Allocate<float>(ForwardFloats);
        var xch = SharedMemory.Allocate<uint>(Exchange);
        int sd = a.D + 4, qOff = 0, kOff = Rows * sd, vOff = kOff + Step * sd;
        int bh = Grid.IdxY, i0 = Grid.IdxX * Rows, head = AttentionKernels.InHead(a, bh), ld = a.InRow;
        int lane = Warp.LaneIdx, t = lane & 3, r0 = 16 * Warp.WarpIdx;
        int iA = i0 + r0 + (lane >> 2), iB = iA + 8;   // the lane's two query rows
        bool active = i0 + r0 < a.N;                   // uniform over the warp
        Stage(q, head + i0 * ld, ld, Rows, Math.Min(Rows, a.N - i0), a.D, a.Scale, bf16, sh, qOff, sd);

        float mA = float.NegativeInfinity, mB = float.NegativeInfinity, lA = 0f, lB = 0f;
        Acc8 acc = default;
        for (int j0 = 0; j0 < a.N; j0 += Step)
        {
            Group.Barrier();   // the previous K and V are consumed (and Q is staged)
            int keys = Math.Min(Step, a.N - j0);
            Stage(k, head + j0 * ld, ld, Step, keys, a.D, 1f, bf16, sh, kOff, sd);
            Stage(v, head + j0 * ld, ld, Step, keys, a.D, 1f, bf16, sh, vOff, sd);
            Group.Barrier();
            if (!active) continue;

            ScoresPair(sh, qOff, kOff, sd, r0, a.D, bf16, xch, out var s0, out var s1);
            int j = j0 + 2 * t;   // s0 holds keys j, j + 1; s1 keys j + 8, j + 9 (rows iA: .A0 .A1, iB: .A2 .A3)
            s0 = MaskKeys(s0, j, a.N); s1 = MaskKeys(s1, j + 8, a.N);
            // Every step holds key j0 < N, so the new maxima are finite and e^(m - m') is 0 on the first step.
            float mA2 = MathF.Max(mA, QuadMax(MathF.Max(MathF.Max(s0.A0, s0.A1), MathF.Max(s1.A0, s1.A1))));
            float mB2 = MathF.Max(mB, QuadMax(MathF.Max(MathF.Max(s0.A2, s0.A3), MathF.Max(s1.A2, s1.A3))));
            float cA = MathF.Exp(mA - mA2), cB = MathF.Exp(mB - mB2);
            mA = mA2; mB = mB2;
            s0 = ExpRows(s0, mA, mB); s1 = ExpRows(s1, mA, mB);
            lA = lA * cA + s0.A0 + s0.A1 + s1.A0 + s1.A1;   // this lane's keys; the quad's sum at the end
            lB = lB * cB + s0.A2 + s0.A3 + s1.A2 + s1.A3;
            acc = Rescale(acc, cA, cB, a.D);
            acc = AddPaired(acc, AFromAcc(DropRound(s0, a, bh, iA, j, bf16)), AFromAcc(DropRound(s1, a, bh, iA, j + 8, bf16)),
                sh, vOff, sd, a.D, bf16, xch);
        }
        if (!active) return;
        lA = QuadSum(lA); lB = QuadSum(lB);
        int oh = AttentionKernels.OutHead(a, bh);
        StoreAcc(acc, o, oh + iA * a.OutRow + 2 * t, oh + iB * a.OutRow + 2 * t, iA < a.N, iB < a.N, 1f / lA, 1f / lB, a.D, false);
        if (t == 0 && iA < a.N) lse[bh * a.N + iA] = mA + MathF.Log(lA);
        if (t == 0 && iB < a.N) lse[bh * a.N + iB] = mB + MathF.Log(lB);
    }

    [GpuKernel]
    public static void BackwardDq(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> rowDot,
        ArrayView<float> dO, ArrayView<float> dq, AttentionArgs a, int bf16)
    {
        var sh = SharedMemory.Allocate<float>(BackwardFloats);
        var xch = SharedMemory.Allocate<uint>(Exchange);
        int sd = a.D + 4, qOff = 0, gOff = Rows * sd, kOff = 2 * Rows * sd, vOff = kOff + Step * sd;
        int bh = Grid.IdxY, i0 = Grid.IdxX * Rows, head = AttentionKernels.InHead(a, bh), ld = a.InRow;
        int lane = Warp.LaneIdx, t = lane & 3, r0 = 16 * Warp.WarpIdx;
        int iA = i0 + r0 + (lane >> 2), iB = iA + 8;
        bool active = i0 + r0 < a.N;
        int rows = Math.Min(Rows, a.N - i0);
        Stage(q, head + i0 * ld, ld, Rows, rows, a.D, a.Scale, bf16, sh, qOff, sd);
        Stage(dO, AttentionKernels.OutHead(a, bh) + i0 * a.OutRow, a.OutRow, Rows, rows, a.D, 1f, bf16, sh, gOff, sd);
        // Rows past N: Q and dO are staged as 0, so S = 0 and dP = 0; with lse = D = 0 their dS is 0.
        float lseA = iA < a.N ? lse[bh * a.N + iA] : 0f, lseB = iB < a.N ? lse[bh * a.N + iB] : 0f;
        float dA = iA < a.N ? rowDot[bh * a.N + iA] : 0f, dB = iB < a.N ? rowDot[bh * a.N + iB] : 0f;

        Acc8 acc = default;
        for (int j0 = 0; j0 < a.N; j0 += Step)
        {
            Group.Barrier();
            int keys = Math.Min(Step, a.N - j0);
            Stage(k, head + j0 * ld, ld, Step, keys, a.D, 1f, bf16, sh, kOff, sd);
            Stage(v, head + j0 * ld, ld, Step, keys, a.D, 1f, bf16, sh, vOff, sd);
            Group.Barrier();
            if (!active) continue;

            ScoresPair(sh, qOff, kOff, sd, r0, a.D, bf16, xch, out var s0, out var s1);    // S = scale Q Kᵀ
            ScoresPair(sh, gOff, vOff, sd, r0, a.D, bf16, xch, out var dp0, out var dp1);  // dP = dO Vᵀ
            int j = j0 + 2 * t;
            var ds0 = SoftmaxGrad(MaskKeys(s0, j, a.N), dp0, lseA, lseB, dA, dB, a, bh, iA, j, bf16, out _);
            var ds1 = SoftmaxGrad(MaskKeys(s1, j + 8, a.N), dp1, lseA, lseB, dA, dB, a, bh, iA, j + 8, bf16, out _);
            acc = AddPaired(acc, AFromAcc(ds0), AFromAcc(ds1), sh, kOff, sd, a.D, bf16, xch);   // dQ += dS K
        }
        if (!active) return;
        StoreAcc(acc, dq, head + iA * ld + 2 * t, head + iB * ld + 2 * t, iA < a.N, iB < a.N, 1f, 1f, a.D, true);
    }

    [GpuKernel]
    public static void BackwardDkDv(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> rowDot,
        ArrayView<float> dO, ArrayView<float> dk, ArrayView<float> dv, AttentionArgs a, int bf16)
    {
        var sh = SharedMemory.Allocate<float>(BackwardFloats);
        var xch = SharedMemory.Allocate<uint>(Exchange);
        int sd = a.D + 4, kOff = 0, vOff = Rows * sd, qOff = 2 * Rows * sd, gOff = qOff + Step * sd;
        int lseOff = gOff + Step * sd, dOff = lseOff + Step;
        int bh = Grid.IdxY, j0 = Grid.IdxX * Rows, head = AttentionKernels.InHead(a, bh), oh = AttentionKernels.OutHead(a, bh), ld = a.InRow;
        int lane = Warp.LaneIdx, t = lane & 3, r0 = 16 * Warp.WarpIdx, tid = Group.IdxX;
        int jA = j0 + r0 + (lane >> 2), jB = jA + 8;   // the lane's two key rows
        bool active = j0 + r0 < a.N;
        int rows = Math.Min(Rows, a.N - j0);
        Stage(k, head + j0 * ld, ld, Rows, rows, a.D, a.Scale, bf16, sh, kOff, sd);
        Stage(v, head + j0 * ld, ld, Rows, rows, a.D, 1f, bf16, sh, vOff, sd);

        Acc8 accK = default, accV = default;
        for (int i0 = 0; i0 < a.N; i0 += Step)
        {
            Group.Barrier();
            int queries = Math.Min(Step, a.N - i0);
            Stage(q, head + i0 * ld, ld, Step, queries, a.D, 1f, bf16, sh, qOff, sd);
            Stage(dO, oh + i0 * a.OutRow, a.OutRow, Step, queries, a.D, 1f, bf16, sh, gOff, sd);
            if (tid < Step)
            {
                sh[lseOff + tid] = tid < queries ? lse[bh * a.N + i0 + tid] : 0f;
                sh[dOff + tid] = tid < queries ? rowDot[bh * a.N + i0 + tid] : 0f;
            }
            Group.Barrier();
            if (!active) continue;

            ScoresPair(sh, kOff, qOff, sd, r0, a.D, bf16, xch, out var s0, out var s1);    // Sᵀ = scale K Qᵀ
            ScoresPair(sh, vOff, gOff, sd, r0, a.D, bf16, xch, out var dp0, out var dp1);  // dPᵀ = V dOᵀ
            int i = i0 + 2 * t;   // s0 holds queries i, i + 1; s1 queries i + 8, i + 9 (keys jA: .A0 .A1, jB: .A2 .A3)
            var ds0 = SoftmaxGradT(s0, dp0, sh, lseOff, dOff, 2 * t, a, bh, i, jA, bf16, out var pk0);
            var ds1 = SoftmaxGradT(s1, dp1, sh, lseOff, dOff, 2 * t + 8, a, bh, i + 8, jA, bf16, out var pk1);
            accV = AddPaired(accV, AFromAcc(pk0), AFromAcc(pk1), sh, gOff, sd, a.D, bf16, xch);   // dV += M Pᵀ dO
            accK = AddPaired(accK, AFromAcc(ds0), AFromAcc(ds1), sh, qOff, sd, a.D, bf16, xch);   // dK += dSᵀ Q
        }
        if (!active) return;
        StoreAcc(accK, dk, head + jA * ld + 2 * t, head + jB * ld + 2 * t, jA < a.N, jB < a.N, 1f, 1f, a.D, true);
        StoreAcc(accV, dv, head + jA * ld + 2 * t, head + jB * ld + 2 * t, jA < a.N, jB < a.N, 1f, 1f, a.D, true);
    }

    // ---- pieces ------------------------------------------------------------------------------

    // Copies `rows` rows of d floats (srcRow apart from srcBase; rows past `valid` as 0) into
    // shared rows `sd` floats apart at `dst`, times `scale`, rounded to the format.
    private static void Stage(ArrayView<float> src, int srcBase, int srcRow, int rows, int valid, int d, float scale, int bf16,
        ArrayView<float> sh, int dst, int sd)
    {
        for (int e = Group.IdxX; e < rows * d; e += GroupSize)
        {
            int r = e / d, c = e - r * d;
            sh[dst + r * sd + c] = r < valid ? Round(src[srcBase + r * srcRow + c] * scale, bf16) : 0f;
        }
    }

    // The warp's 16 rows of the A tile times rows 0..7 (s0) and 8..15 (s1) of the B tile, over d.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScoresPair(ArrayView<float> sh, int aOff, int bOff, int sd, int r0, int d, int bf16, ArrayView<uint> xch,
        out Frag s0, out Frag s1)
    {
        s0 = default; s1 = default;
        for (int c = 0; c < d; c += 16)
        {
            Frag lo = LoadA(sh, aOff, sd, r0, c), hi = LoadA(sh, aOff, sd, r0, c + 8);
            s0 = Mma(s0, lo, LoadBt(sh, bOff, sd, 0, c), hi, LoadBt(sh, bOff, sd, 0, c + 8), bf16, xch);
            s1 = Mma(s1, lo, LoadBt(sh, bOff, sd, 8, c), hi, LoadBt(sh, bOff, sd, 8, c + 8), bf16, xch);
        }
    }

    // acc[16 x d] += A B with A = (lo: keys 0..7, hi: keys 8..15) and B the 16 staged rows at bOff.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Acc8 AddPaired(Acc8 acc, Frag lo, Frag hi, ArrayView<float> sh, int bOff, int sd, int d, int bf16, ArrayView<uint> xch)
    {
        acc.C0 = Mma(acc.C0, lo, LoadBPaired(sh, bOff, sd, 0, 0), hi, LoadBPaired(sh, bOff, sd, 8, 0), bf16, xch);
        acc.C1 = Mma(acc.C1, lo, LoadBPaired(sh, bOff, sd, 0, 8), hi, LoadBPaired(sh, bOff, sd, 8, 8), bf16, xch);
        acc.C2 = Mma(acc.C2, lo, LoadBPaired(sh, bOff, sd, 0, 16), hi, LoadBPaired(sh, bOff, sd, 8, 16), bf16, xch);
        acc.C3 = Mma(acc.C3, lo, LoadBPaired(sh, bOff, sd, 0, 24), hi, LoadBPaired(sh, bOff, sd, 8, 24), bf16, xch);
        if (d > 32)
        {
            acc.C4 = Mma(acc.C4, lo, LoadBPaired(sh, bOff, sd, 0, 32), hi, LoadBPaired(sh, bOff, sd, 8, 32), bf16, xch);
            acc.C5 = Mma(acc.C5, lo, LoadBPaired(sh, bOff, sd, 0, 40), hi, LoadBPaired(sh, bOff, sd, 8, 40), bf16, xch);
            acc.C6 = Mma(acc.C6, lo, LoadBPaired(sh, bOff, sd, 0, 48), hi, LoadBPaired(sh, bOff, sd, 8, 48), bf16, xch);
            acc.C7 = Mma(acc.C7, lo, LoadBPaired(sh, bOff, sd, 0, 56), hi, LoadBPaired(sh, bOff, sd, 8, 56), bf16, xch);
        }
        return acc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Acc8 Rescale(Acc8 acc, float cA, float cB, int d)
    {
        acc.C0 = Scale(acc.C0, cA, cB); acc.C1 = Scale(acc.C1, cA, cB); acc.C2 = Scale(acc.C2, cA, cB); acc.C3 = Scale(acc.C3, cA, cB);
        if (d > 32)
        {
            acc.C4 = Scale(acc.C4, cA, cB); acc.C5 = Scale(acc.C5, cA, cB); acc.C6 = Scale(acc.C6, cA, cB); acc.C7 = Scale(acc.C7, cA, cB);
        }
        return acc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag Scale(Frag c, float cA, float cB) => new() { A0 = c.A0 * cA, A1 = c.A1 * cA, A2 = c.A2 * cB, A3 = c.A3 * cB };

    // Keys j and j + 1 (both rows) past N get -inf, so their P is 0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag MaskKeys(Frag s, int j, int n) => new()
    {
        A0 = j < n ? s.A0 : float.NegativeInfinity, A1 = j + 1 < n ? s.A1 : float.NegativeInfinity,
        A2 = j < n ? s.A2 : float.NegativeInfinity, A3 = j + 1 < n ? s.A3 : float.NegativeInfinity,
    };

    // exp(s - m) with m = mA for the lane's first row, mB for its second.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag ExpRows(Frag s, float mA, float mB) => new()
    {
        A0 = MathF.Exp(s.A0 - mA), A1 = MathF.Exp(s.A1 - mA), A2 = MathF.Exp(s.A2 - mB), A3 = MathF.Exp(s.A3 - mB),
    };

    // round(M_ij p) for query rows iA (.A0 .A1) and iA + 8 (.A2 .A3), keys j, j + 1.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag DropRound(Frag p, in AttentionArgs a, int bh, int iA, int j, int bf16) => new()
    {
        A0 = Round(p.A0 * Keep(a, bh, iA, j), bf16), A1 = Round(p.A1 * Keep(a, bh, iA, j + 1), bf16),
        A2 = Round(p.A2 * Keep(a, bh, iA + 8, j), bf16), A3 = Round(p.A3 * Keep(a, bh, iA + 8, j + 1), bf16),
    };

    // Dq's dS = round(scale P (M dP - D)) with P = exp(S - lse) (rows iA, iA + 8; keys j, j + 1;
    // masked keys have S = -inf, so P = 0).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag SoftmaxGrad(Frag s, Frag dp, float lseA, float lseB, float dA, float dB, in AttentionArgs a, int bh, int iA, int j,
        int bf16, out Frag p)
    {
        p = ExpRows(s, lseA, lseB);
        return new Frag
        {
            A0 = Round(a.Scale * p.A0 * (Keep(a, bh, iA, j) * dp.A0 - dA), bf16),
            A1 = Round(a.Scale * p.A1 * (Keep(a, bh, iA, j + 1) * dp.A1 - dA), bf16),
            A2 = Round(a.Scale * p.A2 * (Keep(a, bh, iA + 8, j) * dp.A2 - dB), bf16),
            A3 = Round(a.Scale * p.A3 * (Keep(a, bh, iA + 8, j + 1) * dp.A3 - dB), bf16),
        };
    }

    // DkDv's transposed block: keys jA (.A0 .A1) and jA + 8 (.A2 .A3), queries i, i + 1 (their
    // lse and D at shared positions c, c + 1 of the step). dSᵀ is returned, round(M Pᵀ) in pk.
    // Queries past N get P = 0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag SoftmaxGradT(Frag s, Frag dp, ArrayView<float> sh, int lseOff, int dOff, int c, in AttentionArgs a, int bh, int i, int jA,
        int bf16, out Frag pk)
    {
        float l0 = sh[lseOff + c], l1 = sh[lseOff + c + 1], d0 = sh[dOff + c], d1 = sh[dOff + c + 1];
        float p0 = i < a.N ? MathF.Exp(s.A0 - l0) : 0f, p1 = i + 1 < a.N ? MathF.Exp(s.A1 - l1) : 0f;
        float p2 = i < a.N ? MathF.Exp(s.A2 - l0) : 0f, p3 = i + 1 < a.N ? MathF.Exp(s.A3 - l1) : 0f;
        float m0 = Keep(a, bh, i, jA), m1 = Keep(a, bh, i + 1, jA), m2 = Keep(a, bh, i, jA + 8), m3 = Keep(a, bh, i + 1, jA + 8);
        pk = new Frag { A0 = Round(m0 * p0, bf16), A1 = Round(m1 * p1, bf16), A2 = Round(m2 * p2, bf16), A3 = Round(m3 * p3, bf16) };
        return new Frag
        {
            A0 = Round(a.Scale * p0 * (m0 * dp.A0 - d0), bf16), A1 = Round(a.Scale * p1 * (m1 * dp.A1 - d1), bf16),
            A2 = Round(a.Scale * p2 * (m2 * dp.A2 - d0), bf16), A3 = Round(a.Scale * p3 * (m3 * dp.A3 - d1), bf16),
        };
    }

    // Writes (or adds) acc times sA (first row) / sB (second row) at row offsets atA, atB (each
    // already + 2t): block c covers columns 8c .. 8c + 7, the lane's two of them 8c + 2t, + 1.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreAcc(Acc8 acc, ArrayView<float> dst, int atA, int atB, bool okA, bool okB, float sA, float sB, int d, bool add)
    {
        StoreBlock(acc.C0, dst, atA, atB, okA, okB, sA, sB, add);
        StoreBlock(acc.C1, dst, atA + 8, atB + 8, okA, okB, sA, sB, add);
        StoreBlock(acc.C2, dst, atA + 16, atB + 16, okA, okB, sA, sB, add);
        StoreBlock(acc.C3, dst, atA + 24, atB + 24, okA, okB, sA, sB, add);
        if (d > 32)
        {
            StoreBlock(acc.C4, dst, atA + 32, atB + 32, okA, okB, sA, sB, add);
            StoreBlock(acc.C5, dst, atA + 40, atB + 40, okA, okB, sA, sB, add);
            StoreBlock(acc.C6, dst, atA + 48, atB + 48, okA, okB, sA, sB, add);
            StoreBlock(acc.C7, dst, atA + 56, atB + 56, okA, okB, sA, sB, add);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreBlock(Frag c, ArrayView<float> dst, int atA, int atB, bool okA, bool okB, float sA, float sB, bool add)
    {
        if (okA)
        {
            dst[atA] = (add ? dst[atA] : 0f) + c.A0 * sA;
            dst[atA + 1] = (add ? dst[atA + 1] : 0f) + c.A1 * sA;
        }
        if (okB)
        {
            dst[atB] = (add ? dst[atB] : 0f) + c.A2 * sB;
            dst[atB + 1] = (add ? dst[atB + 1] : 0f) + c.A3 * sB;
        }
    }

    // keep / (1 - p) for element (i, j) of pair bh, or 1 without dropout: the hash of the CPU
    // backend and of AttentionKernels.Keep.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Keep(in AttentionArgs a, int bh, int i, int j) =>
        a.DropoutP > 0f
            ? (KernelMath.DropoutKeep(a.Seed, ((uint)bh * (uint)a.N + (uint)i) * (uint)a.N + (uint)j, a.DropoutP) ? a.KeepScale : 0f)
            : 1f;
}
