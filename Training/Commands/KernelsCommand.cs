using ILGPU.Runtime.Cuda;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Kernels.Ptx;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Commands.KernelBench;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>
/// `vit kernels ptx --arch sm_90 --out DIR`: compiles every GPU kernel to PTX, no GPU needed.
/// `vit kernels bench [--device cuda]`: times the GPU kernels against cuBLAS, the unfused
/// attention path and the copy rate (see <see cref="KernelBenchmarks"/>).
/// </summary>
public static class KernelsCommand
{
    public const string Help = """
        vit kernels ptx --arch sm_80|sm_90 --out DIR
          writes one .ptx file per GPU kernel (ILGPU's PTX backend, ISA 7.8); no GPU is needed.
          Assemble one with: ptxas -arch=sm_90 -v DIR/<kernel>.ptx -o /dev/null
        vit kernels bench [--device cuda|ilgpu-cpu] [--quick] [--out FILE.md]
          times the GPU kernels with device events (median of 25 samples after warm-up): matmul
          against cuBLAS SGEMM, fused against unfused attention, softmax/layernorm/GELU/AdamW in
          GB/s against the device-to-device copy rate. --out also writes the tables as markdown.
          --quick uses tiny shapes (a smoke test for the ILGPU CPU simulator, not a measurement).
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new ArgParser("kernels", args);
        string sub = a.Positional.Count == 1 ? a.Positional[0] : "";
        if (sub == "ptx")
        {
            string arch = a.Choice("arch", "sm_90", "sm_80", "sm_90");
            string outDir = a.Required("out", "the directory to write the .ptx files into");
            a.RejectUnknown(maxPositional: 1);
            var files = PtxEmitter.WriteAll(arch, outDir);
            foreach (var f in files) stdout.WriteLine(f);
            stdout.WriteLine($"{files.Count} kernels compiled to PTX for {arch} in {Path.GetFullPath(outDir)}");
            return 0;
        }
        if (sub == "bench")
        {
            string device = a.Choice("device", "cuda", "cuda", "ilgpu-cpu");
            bool quick = a.Flag("quick");
            string? outFile = a.Optional("out");
            a.RejectUnknown(maxPositional: 1);
            using var k = (GpuKernels)BackendFactory.Create(device);
            stdout.WriteLine($"device: {Describe(k)}");
            var bench = new KernelBenchmarks(k, quick, stdout);
            bench.RunAll();
            if (outFile is not null)
                AtomicFile.WriteAllText(outFile, $"Device: {Describe(k)}\n" + string.Join("\n", bench.Markdown) + "\n");
            return 0;
        }
        throw new ViTScratchException("vit kernels: expected a subcommand, 'ptx' or 'bench', as in: vit kernels ptx --arch sm_90 --out DIR");
    }

    private static string Describe(GpuKernels k) => k.Accelerator is CudaAccelerator c
        ? $"{c.Name}, {c.NumMultiprocessors} SMs, compute capability {c.Architecture}, PTX ISA {c.InstructionSet}, CUDA driver {c.DriverVersion}"
        : $"{k.Accelerator.Name} (ILGPU CPU simulator: timings mean nothing)";
}
