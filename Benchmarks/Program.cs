using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using ViTScratch.Benchmarks.Gpu;
using ViTScratch.Benchmarks.Lab;
using ViTScratch.Kernels;

namespace ViTScratch.Benchmarks;

/// <summary>
/// Every benchmark class in this assembly, picked with BenchmarkDotNet's own command line, e.g.
///   dotnet run -c Release --project Benchmarks -- --filter '*MatMul*'
///   dotnet run -c Release --project Benchmarks -- --filter '*Attention*' --job short   (quick: 3 iterations)
///   dotnet run -c Release --project Benchmarks -- --list flat                          (what exists)
///   add --inProcess to skip BenchmarkDotNet's per-run rebuild of a boilerplate project.
///   dotnet run -c Release --project Benchmarks -- --interleaved-chunks                 (A/B, interleaved)
///   dotnet run -c Release --project Benchmarks -- --interleaved-pack-a                 (A/B, interleaved)
///   dotnet run -c Release --project Benchmarks -- --interleaved-small-gemm             (A/B, interleaved)
///   dotnet run -c Release --project Benchmarks -- --interleaved-kc [KC]                (A/B, interleaved: the AVX-512 K block)
///   dotnet run -c Release --project Benchmarks -- --interleaved-inplace                (A/B, interleaved: the AVX-512 weight gradient with A in place or packed)
///   dotnet run -c Release --project Benchmarks -- --interleaved-rows-inplace           (A/B, interleaved: the AVX-512 forward and dx products with A rows in place or packed)
///   dotnet run -c Release --project Benchmarks -- --interleaved-fusions [kernels|step]  (A/B, fused against unfused)
///   dotnet run -c Release --project Benchmarks -- --roofline                          (ceilings + every kernel)
///   dotnet run -c Release --project Benchmarks -- --microkernel-probes                 (one core, vs an FMA loop)
///   dotnet run -c Release --project Benchmarks -- --attention-loop 20 [vit-micro] [forward] (for a profiler)
///   dotnet run -c Release --project Benchmarks -- --onnx-vs-ours                       (inference, ours vs ONNX Runtime)
///   dotnet run -c Release --project Benchmarks -- --folder-stream DIR [--make 1000]       (image-folder loader vs the step)
///   dotnet run -c Release --project Benchmarks -- --lab matmul [--device cuda|ilgpu-cpu] (every GPU matmul version, validated + timed)
///   dotnet run -c Release --project Benchmarks -- --kernels-bench [--device cuda|ilgpu-cpu] [--precision fp32|tf32|bf16] [--quick] [--out FILE.md]
///                                                         (GPU kernels against cuBLAS, unfused attention, copy rate)
/// The build timeout is raised from BenchmarkDotNet's 2 minutes: on a busy 2-core machine the
/// boilerplate project's build alone can take longer.
/// See docs/performance.md for the measured numbers.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        // A/B comparisons that must interleave their two sides to survive the shared host's drift.
        if (args is [ChunksInterleaved.Flag]) { ChunksInterleaved.Run(); return; }
        if (args is [PackAInterleaved.Flag]) { PackAInterleaved.Run(); return; }
        if (args is [SmallGemmSplitInterleaved.Flag]) { SmallGemmSplitInterleaved.Run(); return; }
        if (args is [KcInterleaved.Flag, ..]) { KcInterleaved.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 128); return; }
        if (args is [InPlaceInterleaved.Flag]) { InPlaceInterleaved.Run(); return; }
        if (args is [RowsInPlaceInterleaved.Flag]) { RowsInPlaceInterleaved.Run(); return; }
        if (args is [FusionsInterleaved.Flag, ..])
        {
            try { FusionsInterleaved.Run(args); }
            catch (ViTScratchException e) { Console.Error.WriteLine(e.Message); Environment.ExitCode = 2; }
            return;
        }
        // This machine's roofline and every CPU kernel of a vit-tiny step on it.
        if (args is [Roofline.Flag]) { Roofline.Run(); return; }
        // What limits the AVX2 micro-kernel on one core (loads against FMAs).
        if (args is [MicroKernelProbes.Flag]) { MicroKernelProbes.Run(); return; }
        // A steady workload to profile (tools/perf-top.sh).
        if (args is [AttentionLoop.Flag, ..]) { AttentionLoop.Run(args[1..]); return; }
        // Our CPU inference against ONNX Runtime on the exported graph, alternated.
        if (args is [OnnxVsOurs.Flag, ..]) { OnnxVsOurs.Run(args[1..]); return; }
        // An image folder streamed by the loader's workers against the training step it feeds.
        if (args is [FolderStreaming.Flag, ..]) { FolderStreaming.Run(args); return; }
        // The numbered GPU kernel versions (Lab/) and the GPU kernels against their baselines (Gpu/).
        try
        {
            if (args is [LabRunner.Flag, ..]) { Environment.ExitCode = LabRunner.Run(args); return; }
            if (args is [KernelBenchCommand.Flag, ..]) { KernelBenchCommand.Run(args); return; }
        }
        catch (ViTScratchException e)
        {
            Console.Error.WriteLine(e.Message);   // a usage error: one line, no stack trace
            Environment.ExitCode = 2;
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly)
            .Run(args, ManualConfig.Create(DefaultConfig.Instance).WithBuildTimeout(TimeSpan.FromMinutes(15)));
    }
}
