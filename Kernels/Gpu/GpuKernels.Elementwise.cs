using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Elementwise, broadcast and data-movement kernels.
//
// Algorithm: one thread per output element in a grid-stride loop (element i, then i + total
// threads, ...). Consecutive threads touch consecutive addresses, so every warp issues coalesced
// 128-byte loads and stores; these kernels are memory bound and this is all they need.
// Launch: groups of 256 threads, grid = min(ceil(n / 256), 16 x SMs). No shared memory.
// Broadcast shapes follow IKernels: x, y are [outer, mid, inner], b is [outer, inner].
// Flags travel as ints (0/1): kernel parameters are plain unmanaged values.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, float, int>? _fill;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, StridedCopy, int>? _copyStrided;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, float>? _addBroadcast;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, int>? _mulBroadcast;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, float, int>? _scale;

    public void Fill(DeviceBuffer y, float value, int n)
    {
        if (n == 0) return;
        (_fill ??= Load<ArrayView<float>, float, int>(ElementwiseKernels.Fill))(Linear(n), V(y), value, n);
    }

    public void CopyStrided(DeviceBuffer x, DeviceBuffer y, in StridedCopy layout, bool accumulate)
    {
        if (layout.Count == 0) return;
        (_copyStrided ??= Load<ArrayView<float>, ArrayView<float>, StridedCopy, int>(ElementwiseKernels.CopyStrided))(
            Linear(layout.Count), V(x), V(y), layout, accumulate ? 1 : 0);
    }

    public void AddBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, float alpha)
    {
        var shape = new BroadcastShape(outer, mid, inner);
        if (shape.Count == 0) return;
        (_addBroadcast ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, float>(ElementwiseKernels.AddBroadcast))(
            Linear(shape.Count), V(x), V(b), V(y), shape, alpha);
    }

    public void MulBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, bool accumulate)
    {
        var shape = new BroadcastShape(outer, mid, inner);
        if (shape.Count == 0) return;
        (_mulBroadcast ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, int>(ElementwiseKernels.MulBroadcast))(
            Linear(shape.Count), V(x), V(b), V(y), shape, accumulate ? 1 : 0);
    }

    public void Scale(DeviceBuffer x, DeviceBuffer y, int n, float alpha, bool accumulate)
    {
        if (n == 0) return;
        (_scale ??= Load<ArrayView<float>, ArrayView<float>, int, float, int>(ElementwiseKernels.Scale))(
            Linear(n), V(x), V(y), n, alpha, accumulate ? 1 : 0);
    }
}

/// <summary>[outer, mid, inner] of a broadcast op, as one kernel parameter.</summary>
internal readonly record struct BroadcastShape(int Outer, int Mid, int Inner)
{
    public int Count => Outer * Mid * Inner;
}

/// <summary>The kernels of GpuKernels.Elementwise.cs.</summary>
internal static class ElementwiseKernels
{
    [GpuKernel]
    public static void Fill(ArrayView<float> y, float value, int n)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
            y[i] = value;
    }

    // Thread t copies element t of the flattened [N0, N1, N2, Inner] index space.
    [GpuKernel]
    public static void CopyStrided(ArrayView<float> x, ArrayView<float> y, StridedCopy l, int accumulate)
    {
        int total = l.N0 * l.N1 * l.N2 * l.Inner;
        for (int t = Grid.GlobalIndex.X; t < total; t += Grid.DimX * Group.DimX)
        {
            int j = t % l.Inner, r = t / l.Inner;
            int i2 = r % l.N2, r01 = r / l.N2;
            int i1 = r01 % l.N1, i0 = r01 / l.N1;
            float v = x[l.SrcOffset + i0 * l.S0 + i1 * l.S1 + i2 * l.S2 + j];
            int dst = l.DstOffset + i0 * l.D0 + i1 * l.D1 + i2 * l.D2 + j;
            y[dst] = accumulate != 0 ? y[dst] + v : v;
        }
    }

    [GpuKernel]
    public static void AddBroadcast(ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, BroadcastShape s, float alpha)
    {
        int total = s.Outer * s.Mid * s.Inner;
        for (int t = Grid.GlobalIndex.X; t < total; t += Grid.DimX * Group.DimX)
        {
            int i = t % s.Inner, o = t / (s.Mid * s.Inner);
            y[t] = x[t] + alpha * b[o * s.Inner + i];
        }
    }

    [GpuKernel]
    public static void MulBroadcast(ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, BroadcastShape s, int accumulate)
    {
        int total = s.Outer * s.Mid * s.Inner;
        for (int t = Grid.GlobalIndex.X; t < total; t += Grid.DimX * Group.DimX)
        {
            int i = t % s.Inner, o = t / (s.Mid * s.Inner);
            float v = x[t] * b[o * s.Inner + i];
            y[t] = accumulate != 0 ? y[t] + v : v;
        }
    }

    [GpuKernel]
    public static void Scale(ArrayView<float> x, ArrayView<float> y, int n, float alpha, int accumulate)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Grid.DimX * Group.DimX)
        {
            float v = alpha * x[i];
            y[i] = accumulate != 0 ? y[i] + v : v;
        }
    }
}
