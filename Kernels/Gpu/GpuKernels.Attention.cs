using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Fused scaled dot-product attention on the GPU: the dispatch (AttentionForward, AttentionBackward
// below) between the main path, AttentionKernels.cs, and the long-sequence fallback,
// AttentionLongKernels.cs.
//
// Which path runs. Heads with N <= 128 keys whose K rows and a chunk of scores fit 32 KB of
// shared memory (AttentionKernels.Fits: every ViT preset, N = 17 to 65 with d = 32 or 64)
// take the register-tiled kernels of AttentionKernels.cs: that is the path the model
// runs, and the file to read first. Everything else (a longer sequence, such as the 257 tokens
// of 2 x 2 patches on a 32 x 32 image, or a head too wide for 32 KB) takes the long-sequence
// fallback, AttentionLongKernels.cs, which works for any N and d <= 128. Both paths use RowDot
// (AttentionKernels.cs) for D (below) and the same dropout hash. Under Precision Tf32 or Bf16,
// heads of d = 32 or 64 (any N) take the tensor-core kernels of AttentionTensorCoreKernels.cs
// instead (same contract, same RowDot and hash).
//
// Twins: the CPU kernel is Kernels/Cpu/CpuKernels.Attention.cs; the float64 reference is
// Tests/Reference/ReferenceKernels.Attention.cs, which computes the backward pass by the plain
// chain rule, without the identity for D below, so a kernel that gets it wrong disagrees.
//
// Backward, D first. With s_ij = scale q_i . k_j, P_ij = exp(s_ij - lse_i) (recomputed from the
// saved lse), M_ij the dropout factor (0 or 1 / (1 - p); 1 without dropout) and
// o_i = sum_j M_ij P_ij v_j, the gradient reaching P is dP_ij = M_ij dO_i . v_j, and the softmax
// backward is dS_ij = P_ij (dP_ij - D_i) with D_i = sum_k P_ik dP_ik. That row sum needs every
// key, but
//   D_i = sum_k P_ik M_ik (dO_i . v_k) = dO_i . (sum_k M_ik P_ik v_k) = dO_i . o_i,
// so RowDot computes it once per row from dO and o (d products, one warp per row) before either
// path's backward kernels, and each of them forms dS_ij from its own P_ij and dP_ij alone.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnLongForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnRowDot;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnLongDq;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnLongDkDv;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnDq;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnDkDv;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>? _attnBackward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs, int>? _attnTcForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs, int>? _attnTcDq;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs, int>? _attnTcDkDv;

    // Under Tf32 or Bf16 the tensor-core kernels (AttentionTensorCoreKernels.cs) take the head
    // dimensions they support (32 and 64, any N); other shapes keep the FP32 paths below.
    private bool UsesTensorCores(int n, int d) => Precision != MathPrecision.Fp32 && AttentionTensorCoreKernels.Supports(n, d);

    private int Bf16Flag => Precision == MathPrecision.Bf16 ? 1 : 0;

    private static KernelConfig TensorCoreGrid(int bh, int n) =>
        new(new Index2D(AttentionTensorCoreKernels.Blocks(n), bh), new Index2D(AttentionTensorCoreKernels.GroupSize, 1));

    private static AttentionArgs AttnArgs(int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout)
    {
        if (d > AttentionLongKernels.MaxHeadDim)
            throw new ArgumentOutOfRangeException(nameof(d), $"the GPU attention kernels support head dimensions up to {AttentionLongKernels.MaxHeadDim}, got {d}");
        var l = layout ?? AttentionLayout.Dense(n, d);
        return new AttentionArgs(bh, n, d, scale, dropoutP, seed, dropoutP > 0f ? 1f / (1f - dropoutP) : 1f,
            l.Heads, l.InBatch, l.InRow, l.OutBatch, l.OutRow);
    }

    private static KernelConfig LongGrid(int bh, int n) =>
        new(new Index2D((n + WarpsPerGroup - 1) / WarpsPerGroup, bh), new Index2D(GroupSize, 1));

    // The main path (AttentionKernels.cs): one group of 128 per (chunk of rows, bh).
    private static KernelConfig ChunkGrid(int bh, int n, int d) =>
        new(new Index2D(AttentionKernels.GeometryFor(n, d).Chunks, bh), new Index2D(AttentionKernels.GroupSize, 1));

    public void AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null)
    {
        if (bh == 0 || n == 0) return;
        var a = AttnArgs(bh, n, d, scale, dropoutP, seed, layout);
        if (UsesTensorCores(n, d))
        {
            (_attnTcForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs, int>(AttentionTensorCoreKernels.Forward))(
                TensorCoreGrid(bh, n), V(q), V(k), V(v), V(o), V(lse), a, Bf16Flag);
            return;
        }
        if (AttentionKernels.Fits(n, d))
        {
            (_attnForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.Forward))(
                ChunkGrid(bh, n, d), V(q), V(k), V(v), V(o), V(lse), a);
            return;
        }
        (_attnLongForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionLongKernels.Forward))(
            LongGrid(bh, n), V(q), V(k), V(v), V(o), V(lse), a);
    }

    public void AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null)
    {
        if (bh == 0 || n == 0) return;
        var a = AttnArgs(bh, n, d, scale, dropoutP, seed, layout);
        var rowDot = Workspace("attention-D", bh * n);
        (_attnRowDot ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.RowDot))(
            WarpPerRow(bh * n), V(dO), V(o), rowDot, a);
        if (UsesTensorCores(n, d))
        {
            (_attnTcDq ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs, int>(AttentionTensorCoreKernels.BackwardDq))(
                TensorCoreGrid(bh, n), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dq), a, Bf16Flag);
            (_attnTcDkDv ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs, int>(AttentionTensorCoreKernels.BackwardDkDv))(
                TensorCoreGrid(bh, n), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dk), V(dv), a, Bf16Flag);
            return;
        }
        // The fast path's Dq and DkDv halves run as one grid (AttentionKernels.Backward) for
        // head dimensions above 32 and one after the other otherwise: on an H200 (B = 128, N = 65;
        // docs/log/2026-performance-log.md, run 7) one launch was 1.16x (H = 3) and 1.04x (H = 6)
        // faster at d = 64, but 0.93x (H = 12) and 0.95x (H = 4) at d = 32, the same in two repeats.
        // Both modes run in training (vit-tiny has d = 64, vit-micro d = 32), so both are kept.
        bool oneLaunch = d > 32;
        if (AttentionKernels.Fits(n, d) && oneLaunch)
        {
            var g = AttentionKernels.GeometryFor(n, d);
            (_attnBackward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.Backward))(
                new KernelConfig(new Index2D(2 * g.Chunks, bh), new Index2D(AttentionKernels.GroupSize, 1)),
                V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dq), V(dk), V(dv), a);
            return;
        }
        if (AttentionKernels.Fits(n, d))
        {
            (_attnDq ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.BackwardDq))(
                ChunkGrid(bh, n, d), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dq), a);
            (_attnDkDv ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionKernels.BackwardDkDv))(
                ChunkGrid(bh, n, d), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dk), V(dv), a);
            return;
        }
        (_attnLongDq ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionLongKernels.BackwardDq))(
            LongGrid(bh, n), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dq), a);
        (_attnLongDkDv ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(AttentionLongKernels.BackwardDkDv))(
            LongGrid(bh, n), V(q), V(k), V(v), V(lse), rowDot, V(dO), V(dk), V(dv), a);
    }
}

/// <summary>Attention shape, hyper-parameters and <see cref="AttentionLayout"/> as one kernel parameter.</summary>
internal readonly record struct AttentionArgs(int BH, int N, int D, float Scale, float DropoutP, uint Seed, float KeepScale,
    int Heads, int InBatch, int InRow, int OutBatch, int OutRow);

