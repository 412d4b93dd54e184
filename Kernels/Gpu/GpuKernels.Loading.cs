using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Kernel loading, one overload per parameter count. Every kernel is an explicitly grouped kernel:
// the launch passes a KernelConfig (grid, group) chosen by the op, because the kernels rely on a
// fixed group shape (warps per row, tiles per group). Each load first checks that the method is in
// the [GpuKernel] registry, so everything that can run is also checked by ptxas.
// The launcher ILGPU returns takes the stream as its first argument; the delegate handed to the ops
// passes _stream, read at each launch (the accelerator's default stream, or the capture stream of
// GpuKernels.Capture.cs once a CUDA graph is wanted), and counts the launch in _launches.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, T1> Load<T1>(Action<T1> kernel)
        where T1 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1) => { _launches++; launch(_stream, config, a1); };
    }

    private Action<KernelConfig, T1, T2> Load<T1, T2>(Action<T1, T2> kernel)
        where T1 : struct where T2 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2) => { _launches++; launch(_stream, config, a1, a2); };
    }

    private Action<KernelConfig, T1, T2, T3> Load<T1, T2, T3>(Action<T1, T2, T3> kernel)
        where T1 : struct where T2 : struct where T3 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3) => { _launches++; launch(_stream, config, a1, a2, a3); };
    }

    private Action<KernelConfig, T1, T2, T3, T4> Load<T1, T2, T3, T4>(Action<T1, T2, T3, T4> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4) => { _launches++; launch(_stream, config, a1, a2, a3, a4); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5> Load<T1, T2, T3, T4, T5>(Action<T1, T2, T3, T4, T5> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6> Load<T1, T2, T3, T4, T5, T6>(Action<T1, T2, T3, T4, T5, T6> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7> Load<T1, T2, T3, T4, T5, T6, T7>(Action<T1, T2, T3, T4, T5, T6, T7> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8> Load<T1, T2, T3, T4, T5, T6, T7, T8>(Action<T1, T2, T3, T4, T5, T6, T7, T8> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7, a8) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7, a8); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7, a8, a9) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7, a8, a9); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct where T13 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13); };
    }

    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct where T13 : struct where T14 : struct
    {
        GpuKernelRegistry.EnsureRegistered(kernel);
        var launch = _accelerator.LoadKernel(kernel);
        return (config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14) => { _launches++; launch(_stream, config, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14); };
    }
}
