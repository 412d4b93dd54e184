using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Optimizer kernels and the global gradient norm.
//
// SumSquares: two stages, no atomics. Stage 1 (Partials): a fixed grid of 64 groups x 256
//   threads; each thread sums squares in a grid-stride loop, the warp reduces by shuffles, the 8
//   warp sums meet in shared memory (8 floats) and thread 0 writes the group's partial. Stage 2
//   (Finish): one warp adds the 64 partials and does result[0] (=|+=) total. A fixed partial
//   count keeps the summation order independent of the device, hence reproducible.
// AdamW / SGD: one thread per parameter, grid-stride, 256-thread groups. The clip factor is
//   computed in the kernel from gradNormSq[0] with KernelMath.ClipFactor itself, so clipping
//   needs no host round trip and matches the CPU backend bit for bit in the formula.
internal sealed partial class GpuKernels
{
    private const int SumSquaresGroups = 64;

    private Action<KernelConfig, ArrayView<float>, int, ArrayView<float>>? _sumSquaresPartials;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, int>? _sumSquaresFinish;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, AdamWKernelArgs>? _adamW;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, SgdKernelArgs>? _sgd;

    public void SumSquares(DeviceBuffer x, int n, DeviceBuffer result, bool accumulate)
    {
        var partials = Workspace("sumsquares", SumSquaresGroups);
        (_sumSquaresPartials ??= Load<ArrayView<float>, int, ArrayView<float>>(OptimizerKernels.SumSquaresPartials))(
            new KernelConfig(SumSquaresGroups, GroupSize), V(x), n, partials);
        (_sumSquaresFinish ??= Load<ArrayView<float>, ArrayView<float>, int>(OptimizerKernels.SumSquaresFinish))(
            new KernelConfig(1, WarpSize), partials, V(result), accumulate ? 1 : 0);
    }

    public void AdamWStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n,
        in AdamWArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        if (n == 0) return;
        var a = new AdamWKernelArgs(args.Beta1, args.Beta2, args.Eps, 1f - args.Lr * args.WeightDecay,
            args.Lr / args.BiasCorrection1, 1f / MathF.Sqrt(args.BiasCorrection2), maxNorm, gradNormSq is null ? 0 : 1);
        (_adamW ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, AdamWKernelArgs>(OptimizerKernels.AdamW))(
            Linear(n), V(param), V(grad), V(m), V(v), gradNormSq is null ? _unit.View : V(gradNormSq), n, a);
    }

    public void SgdStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer momentum, int n,
        in SgdArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        if (n == 0) return;
        var a = new SgdKernelArgs(args.Lr, args.Momentum, args.Nesterov ? 1 : 0, args.WeightDecay, args.FirstStep ? 1 : 0,
            maxNorm, gradNormSq is null ? 0 : 1);
        (_sgd ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, SgdKernelArgs>(OptimizerKernels.Sgd))(
            Linear(n), V(param), V(grad), V(momentum), gradNormSq is null ? _unit.View : V(gradNormSq), n, a);
    }
}

/// <summary>AdamW constants folded on the host: decay = 1 - lr wd, stepSize = lr / bc1, invSqrtBc2 = 1 / sqrt(bc2).</summary>
internal readonly record struct AdamWKernelArgs(float Beta1, float Beta2, float Eps, float Decay, float StepSize, float InvSqrtBc2, float MaxNorm, int HasNorm);

/// <summary>SGD hyper-parameters as one kernel parameter (flags as ints).</summary>
internal readonly record struct SgdKernelArgs(float Lr, float Momentum, int Nesterov, float WeightDecay, int FirstStep, float MaxNorm, int HasNorm);

/// <summary>The kernels of GpuKernels.Optimizers.cs.</summary>
internal static class OptimizerKernels
{
    [GpuKernel]
    public static void SumSquaresPartials(ArrayView<float> x, int n, ArrayView<float> partials)
    {
        var warpSums = SharedMemory.Allocate<float>(GpuKernels.WarpsPerGroup);
        float s = 0f;
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float v = x[i];
            s += v * v;
        }
        s = WarpMath.Sum(s);
        if (Warp.LaneIdx == 0) warpSums[Warp.WarpIdx] = s;
        Group.Barrier();
        if (Group.IdxX == 0)
            partials[Grid.IdxX] = warpSums[0] + warpSums[1] + warpSums[2] + warpSums[3]
                                + warpSums[4] + warpSums[5] + warpSums[6] + warpSums[7];
    }

    // One warp: lane l adds partials l and l + 32, then a shuffle reduction.
    [GpuKernel]
    public static void SumSquaresFinish(ArrayView<float> partials, ArrayView<float> result, int accumulate)
    {
        int lane = Warp.LaneIdx;
        float s = WarpMath.Sum(partials[lane] + partials[lane + GpuKernels.WarpSize]);
        if (lane == 0) result[0] = accumulate != 0 ? result[0] + s : s;
    }

    // PyTorch's AdamW: decay first, then p -= lr mhat / (sqrt(vhat) + eps).
    [GpuKernel]
    public static void AdamW(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v,
        ArrayView<float> gradNormSq, int n, AdamWKernelArgs a)
    {
        float clip = a.HasNorm != 0 ? KernelMath.ClipFactor(gradNormSq[0], a.MaxNorm) : 1f;
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float g = grad[i] * clip;
            float mi = a.Beta1 * m[i] + (1f - a.Beta1) * g;
            float vi = a.Beta2 * v[i] + (1f - a.Beta2) * g * g;
            m[i] = mi;
            v[i] = vi;
            param[i] = param[i] * a.Decay - a.StepSize * mi / (MathF.Sqrt(vi) * a.InvSqrtBc2 + a.Eps);
        }
    }

    // PyTorch's SGD: L2 decay added to the gradient, then momentum (optionally Nesterov).
    [GpuKernel]
    public static void Sgd(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> momentum,
        ArrayView<float> gradNormSq, int n, SgdKernelArgs a)
    {
        float clip = a.HasNorm != 0 ? KernelMath.ClipFactor(gradNormSq[0], a.MaxNorm) : 1f;
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float g = grad[i] * clip + a.WeightDecay * param[i];
            if (a.Momentum != 0f)
            {
                float b = a.FirstStep != 0 ? g : a.Momentum * momentum[i] + g;
                momentum[i] = b;
                g = a.Nesterov != 0 ? g + a.Momentum * b : b;
            }
            param[i] -= a.Lr * g;
        }
    }
}
