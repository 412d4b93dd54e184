using ILGPU.Runtime.Cuda;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Training;

namespace ViTScratch.Benchmarks.Gpu;

/// <summary>
/// `--kernels-bench [--device cuda|ilgpu-cpu] [--precision fp32|tf32|bf16] [--quick] [--out FILE.md]`: <see cref="KernelBenchmarks"/>
/// on one device, the tables on stdout and, with --out, as markdown. --quick uses tiny shapes (a
/// smoke test for the ILGPU CPU simulator, not a measurement). --precision sets the kernels'
/// <see cref="IKernels.Precision"/> (the arithmetic of the matmuls and attention products) before any runs.
/// </summary>
public static class KernelBenchCommand
{
    public const string Flag = "--kernels-bench";

    public static void Run(string[] args)
    {
        string device = Option(args, "--device") ?? "cuda";
        if (device is not ("cuda" or "ilgpu-cpu"))
            throw new ViTScratchException($"{Flag}: --device must be cuda or ilgpu-cpu, got '{device}'");
        string precisionName = Option(args, "--precision") ?? "fp32";
        if (!TrainOptions.PrecisionNames.Contains(precisionName))
            throw new ViTScratchException($"{Flag}: --precision must be one of {string.Join(", ", TrainOptions.PrecisionNames)}, got '{precisionName}'");
        bool quick = args.Contains("--quick");
        string? outFile = Option(args, "--out");
        using var k = (GpuKernels)BackendFactory.Create(device);
        k.Precision = TrainOptions.MathPrecisionOf(precisionName);
        Console.WriteLine($"device: {Describe(k)}, precision {k.Precision.ToString().ToLowerInvariant()}");
        var bench = new KernelBenchmarks(k, quick, Console.Out);
        bench.RunAll();
        if (outFile is not null)
            File.WriteAllText(outFile, $"Device: {Describe(k)}, precision {precisionName}\n" + string.Join("\n", bench.Markdown) + "\n");
    }

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string Describe(GpuKernels k) => k.Accelerator is CudaAccelerator c
        ? $"{c.Name}, {c.NumMultiprocessors} SMs, compute capability {c.Architecture}, PTX ISA {c.InstructionSet}, CUDA driver {c.DriverVersion}"
        : $"{k.Accelerator.Name} (ILGPU CPU simulator: timings mean nothing)";
}
