using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Kernels;

/// <summary>
/// Device selection. Names: "auto" (CUDA when an NVIDIA GPU is present, else the CPU backend),
/// "cpu" (SIMD C#), "cuda" (ILGPU kernels on an NVIDIA GPU) and "ilgpu-cpu" (the same ILGPU
/// kernels on ILGPU's CPU accelerator with 32-wide simulated warps: slow, for tests).
/// </summary>
public static class BackendFactory
{
    public static readonly string[] Names = ["auto", "cpu", "cuda", "ilgpu-cpu"];

    public static IKernels Create(string name) => name switch
    {
        "auto" or "cpu" => new CpuKernels(),
        "cuda" or "ilgpu-cpu" => throw new ViTScratchException($"device '{name}' is not available in this build yet"),
        _ => throw new ViTScratchException($"unknown device '{name}'; choose one of: {string.Join(", ", Names)}"),
    };

    /// <summary>Whether <paramref name="name"/> can be created on this machine (tests use it to build their matrix).</summary>
    public static bool IsAvailable(string name) => name is "auto" or "cpu";
}
