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
// AdamWScalars / SgdScalars: the same updates (the same loop bodies, AdamWUpdate and SgdUpdate)
//   with the values that change every step read from a small device buffer instead of the kernel
//   arguments: AdamW's decay, step size and bias correction ([1 - lr wd, lr / bc1, 1 / sqrt(bc2)],
//   folded on the host by AdamWStepScalars exactly as for AdamW), SGD's [lr, first step]. The host
//   writes that buffer before each step, so a CUDA graph that captured one step replays any other
//   (GpuKernels.Capture.cs); the arguments left are the same at every step.
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
        var a = Fold(args, maxNorm, gradNormSq is not null);
        (_adamW ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, AdamWKernelArgs>(OptimizerKernels.AdamW))(
            Linear(n), V(param), V(grad), V(m), V(v), gradNormSq is null ? _unit.View : V(gradNormSq), n, a);
    }

    /// <summary>Values per AdamW step in the buffer of the scalar form: decay, step size, 1 / sqrt(bias correction 2).</summary>
    public const int AdamWStepScalarCount = 3;
    /// <summary>Values per SGD step in the buffer of the scalar form: learning rate, 1 on the first step else 0.</summary>
    public const int SgdStepScalarCount = 2;

    /// <summary>
    /// The step-dependent AdamW values, folded on the host in float exactly as <see cref="AdamWStep(DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, int, in AdamWArgs, DeviceBuffer?, float)"/>
    /// folds them, written to <paramref name="destination"/> in the order its scalar form reads them.
    /// </summary>
    public static void AdamWStepScalars(in AdamWArgs args, Span<float> destination)
    {
        var a = Fold(args, 0f, false);
        destination[0] = a.Decay;
        destination[1] = a.StepSize;
        destination[2] = a.InvSqrtBc2;
    }

    /// <summary>The step-dependent SGD values for the scalar form: [lr, 1 on the first step else 0].</summary>
    public static void SgdStepScalars(in SgdArgs args, Span<float> destination)
    {
        destination[0] = args.Lr;
        destination[1] = args.FirstStep ? 1f : 0f;
    }

    private static AdamWKernelArgs Fold(in AdamWArgs args, float maxNorm, bool hasNorm) =>
        new(args.Beta1, args.Beta2, args.Eps, 1f - args.Lr * args.WeightDecay,
            args.Lr / args.BiasCorrection1, 1f / MathF.Sqrt(args.BiasCorrection2), maxNorm, hasNorm ? 1 : 0);

    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, AdamWKernelArgs>? _adamWScalars;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, SgdKernelArgs>? _sgdScalars;

    /// <summary>
    /// AdamW as <see cref="AdamWStep(DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, int, in AdamWArgs, DeviceBuffer?, float)"/>,
    /// with lr, weight decay and the step's bias corrections read from <paramref name="stepScalars"/>
    /// (<see cref="AdamWStepScalarCount"/> floats from <see cref="AdamWStepScalars"/>), written before the step:
    /// the form a CUDA graph can replay. <paramref name="constants"/> gives beta1, beta2 and eps.
    /// </summary>
    public void AdamWStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n,
        in AdamWArgs constants, DeviceBuffer stepScalars, DeviceBuffer? gradNormSq, float maxNorm)
    {
        if (n == 0) return;
        if (stepScalars.Length < AdamWStepScalarCount) throw new ArgumentException($"AdamW step scalars: {stepScalars.Length} floats, needs {AdamWStepScalarCount}");
        var a = new AdamWKernelArgs(constants.Beta1, constants.Beta2, constants.Eps, 0f, 0f, 0f, maxNorm, gradNormSq is null ? 0 : 1);
        (_adamWScalars ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, AdamWKernelArgs>(OptimizerKernels.AdamWScalars))(
            Linear(n), V(param), V(grad), V(m), V(v), gradNormSq is null ? _unit.View : V(gradNormSq), V(stepScalars), n, a);
    }

    /// <summary>
    /// SGD as <see cref="SgdStep(DeviceBuffer, DeviceBuffer, DeviceBuffer, int, in SgdArgs, DeviceBuffer?, float)"/>, with the
    /// learning rate and the first-step flag read from <paramref name="stepScalars"/> (<see cref="SgdStepScalars"/>);
    /// <paramref name="constants"/> gives momentum, Nesterov and weight decay.
    /// </summary>
    public void SgdStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer momentum, int n,
        in SgdArgs constants, DeviceBuffer stepScalars, DeviceBuffer? gradNormSq, float maxNorm)
    {
        if (n == 0) return;
        if (stepScalars.Length < SgdStepScalarCount) throw new ArgumentException($"SGD step scalars: {stepScalars.Length} floats, needs {SgdStepScalarCount}");
        var a = new SgdKernelArgs(0f, constants.Momentum, constants.Nesterov ? 1 : 0, constants.WeightDecay, 0, maxNorm, gradNormSq is null ? 0 : 1);
        (_sgdScalars ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, SgdKernelArgs>(OptimizerKernels.SgdScalars))(
            Linear(n), V(param), V(grad), V(momentum), gradNormSq is null ? _unit.View : V(gradNormSq), V(stepScalars), n, a);
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
        AdamWUpdate(param, grad, m, v, n, clip, a, a.Decay, a.StepSize, a.InvSqrtBc2);
    }

    // AdamW with [decay, stepSize, invSqrtBc2] read from the device (the CUDA-graph form).
    [GpuKernel]
    public static void AdamWScalars(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v,
        ArrayView<float> gradNormSq, ArrayView<float> stepScalars, int n, AdamWKernelArgs a)
    {
        float clip = a.HasNorm != 0 ? KernelMath.ClipFactor(gradNormSq[0], a.MaxNorm) : 1f;
        AdamWUpdate(param, grad, m, v, n, clip, a, stepScalars[0], stepScalars[1], stepScalars[2]);
    }

    // The one AdamW loop of both forms: a grid-stride pass over the n parameters.
    private static void AdamWUpdate(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, int n,
        float clip, AdamWKernelArgs a, float decay, float stepSize, float invSqrtBc2)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float g = grad[i] * clip;
            float mi = a.Beta1 * m[i] + (1f - a.Beta1) * g;
            float vi = a.Beta2 * v[i] + (1f - a.Beta2) * g * g;
            m[i] = mi;
            v[i] = vi;
            param[i] = param[i] * decay - stepSize * mi / (MathF.Sqrt(vi) * invSqrtBc2 + a.Eps);
        }
    }

    // PyTorch's SGD: L2 decay added to the gradient, then momentum (optionally Nesterov).
    [GpuKernel]
    public static void Sgd(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> momentum,
        ArrayView<float> gradNormSq, int n, SgdKernelArgs a)
    {
        float clip = a.HasNorm != 0 ? KernelMath.ClipFactor(gradNormSq[0], a.MaxNorm) : 1f;
        SgdUpdate(param, grad, momentum, n, clip, a, a.Lr, a.FirstStep != 0);
    }

    // SGD with [lr, first step] read from the device (the CUDA-graph form).
    [GpuKernel]
    public static void SgdScalars(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> momentum,
        ArrayView<float> gradNormSq, ArrayView<float> stepScalars, int n, SgdKernelArgs a)
    {
        float clip = a.HasNorm != 0 ? KernelMath.ClipFactor(gradNormSq[0], a.MaxNorm) : 1f;
        SgdUpdate(param, grad, momentum, n, clip, a, stepScalars[0], stepScalars[1] != 0f);
    }

    // The one SGD loop of both forms.
    private static void SgdUpdate(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> momentum, int n,
        float clip, SgdKernelArgs a, float lr, bool firstStep)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float g = grad[i] * clip + a.WeightDecay * param[i];
            if (a.Momentum != 0f)
            {
                float b = firstStep ? g : a.Momentum * momentum[i] + g;
                momentum[i] = b;
                g = a.Nesterov != 0 ? g + a.Momentum * b : b;
            }
            param[i] -= lr * g;
        }
    }
}
