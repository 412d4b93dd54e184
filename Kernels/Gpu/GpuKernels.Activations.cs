using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// GELU (exact erf form) and dropout: elementwise, one thread per element in a grid-stride loop,
// 256-thread groups, no shared memory (same geometry as GpuKernels.Elementwise.cs).
// GELU:    y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, gelu'(x) = Phi(x) + x phi(x).
//          erf is Erf.Of (Kernels/Erf.cs), called inside the kernel, so GPU and CPU share one formula.
// Dropout: the mask is KernelMath.DropoutKeep(seed, i, p), a hash of (seed, i): the backward pass
//          recomputes it, and every backend draws the same mask.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, int>? _geluForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>? _geluBackward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, float, uint, int>? _dropout;

    public void GeluForward(DeviceBuffer x, DeviceBuffer y, int n)
    {
        if (n == 0) return;
        (_geluForward ??= Load<ArrayView<float>, ArrayView<float>, int>(ActivationKernels.GeluForward))(Linear(n), V(x), V(y), n);
    }

    public void GeluBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, int n)
    {
        if (n == 0) return;
        (_geluBackward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(ActivationKernels.GeluBackward))(Linear(n), V(x), V(dy), V(dx), n);
    }

    public void DropoutForward(DeviceBuffer x, DeviceBuffer y, int n, float p, uint seed)
    {
        if (n == 0) return;
        (_dropout ??= Load<ArrayView<float>, ArrayView<float>, int, float, uint, int>(ActivationKernels.Dropout))(Linear(n), V(x), V(y), n, p, seed, 0);
    }

    public void DropoutBackward(DeviceBuffer dy, DeviceBuffer dx, int n, float p, uint seed)
    {
        if (n == 0) return;
        (_dropout ??= Load<ArrayView<float>, ArrayView<float>, int, float, uint, int>(ActivationKernels.Dropout))(Linear(n), V(dy), V(dx), n, p, seed, 1);
    }
}

/// <summary>The kernels of GpuKernels.Activations.cs.</summary>
internal static class ActivationKernels
{
    private const float InvSqrt2 = 0.70710678118654752f;
    private const float InvSqrt2Pi = 0.39894228040143268f;

    [GpuKernel]
    public static void GeluForward(ArrayView<float> x, ArrayView<float> y, int n)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float v = x[i];
            y[i] = v * 0.5f * (1f + Erf.Of(v * InvSqrt2));
        }
    }

    [GpuKernel]
    public static void GeluBackward(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, int n)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float v = x[i];
            float d = 0.5f * (1f + Erf.Of(v * InvSqrt2)) + v * InvSqrt2Pi * MathF.Exp(-0.5f * v * v);
            dx[i] += d * dy[i];
        }
    }

    // Forward (accumulate = 0): y = x * keep / (1 - p). Backward (accumulate = 1): dx += dy * keep / (1 - p).
    // One kernel: the two passes differ only in = versus +=.
    [GpuKernel]
    public static void Dropout(ArrayView<float> x, ArrayView<float> y, int n, float p, uint seed, int accumulate)
    {
        float keepScale = 1f / (1f - p);
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float v = KernelMath.DropoutKeep(seed, (uint)i, p) ? x[i] * keepScale : 0f;
            y[i] = accumulate != 0 ? y[i] + v : v;
        }
    }
}
