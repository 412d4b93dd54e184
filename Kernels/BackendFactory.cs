using ILGPU;
using ILGPU.Runtime.Cuda;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Kernels;

/// <summary>
/// Device selection. Names: "auto" (CUDA when an NVIDIA GPU is present, else the CPU backend),
/// "cpu" (SIMD C#), "cuda" (ILGPU kernels on an NVIDIA GPU) and "ilgpu-cpu" (the same ILGPU
/// kernels on ILGPU's CPU accelerator with 32-wide simulated warps: slow, for tests).
/// </summary>
public static class BackendFactory
{
    /// <summary>Every name <see cref="Create"/> accepts.</summary>
    public static readonly string[] Names = ["auto", "cpu", "cuda", "ilgpu-cpu"];

    /// <summary>A new backend by <paramref name="name"/> (one of <see cref="Names"/>); throws <see cref="ViTScratchException"/> for an unknown name or "cuda" without a GPU.</summary>
    public static IKernels Create(string name) => name switch
    {
        "auto" => HasCuda ? new GpuKernels(GpuDeviceKind.Cuda) : new CpuKernels(),
        "cpu" => new CpuKernels(),
        "cuda" => HasCuda
            ? new GpuKernels(GpuDeviceKind.Cuda)
            : throw new ViTScratchException("device 'cuda': no CUDA device was found (NVIDIA driver missing or no GPU); use --device cpu"),
        "ilgpu-cpu" => new GpuKernels(GpuDeviceKind.CpuSimulator),
        _ => throw new ViTScratchException($"unknown device '{name}'; choose one of: {string.Join(", ", Names)}"),
    };

    /// <summary>Whether <paramref name="name"/> can be created on this machine (tests use it to build their matrix).</summary>
    public static bool IsAvailable(string name) => name switch
    {
        "auto" or "cpu" or "ilgpu-cpu" => true,
        "cuda" => HasCuda,
        _ => false,
    };

    private static readonly Lazy<bool> _hasCuda = new(ProbeCuda);

    /// <summary>Whether an NVIDIA GPU and a working driver are present. Probed once.</summary>
    public static bool HasCuda => _hasCuda.Value;

    /// <summary>
    /// Why <see cref="HasCuda"/> is false: "no CUDA device", or the driver's or ILGPU's exception.
    /// Null while CUDA is present. `vit info` prints it, so a GPU machine that silently falls back
    /// to the CPU says why.
    /// </summary>
    public static string? CudaUnavailableReason => HasCuda ? null : _cudaProbeError;

    private static string? _cudaProbeError;

    private static bool ProbeCuda()
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            if (context.GetCudaDevices().Count > 0) return true;
            _cudaProbeError = "no CUDA device was found";
            return false;
        }
        catch (Exception e)
        {
            // No driver (libcuda missing), or a driver that fails to initialise: no CUDA.
            _cudaProbeError = $"{e.GetType().Name}: {e.Message}";
            return false;
        }
    }
}
