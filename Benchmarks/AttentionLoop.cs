using System.Diagnostics;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// A steady workload for a sampling profiler: the CPU fused attention forward and backward on
/// vit-tiny's packed layout (batch 128, 3 heads, N = 65, d = 64) or vit-micro's (4 heads, d = 32),
/// over and over for a number of seconds, and nothing else in the process worth sampling; with
/// `forward`, the forward alone (what inference runs). tools/perf-top.sh runs it under
/// `perf` and prints which functions the samples fall in (docs/log/2026-performance-log.md has the readings).
/// Run: dotnet run -c Release --project Benchmarks -- --attention-loop [seconds, default 20] [vit-tiny|vit-micro] [forward]
/// </summary>
public static class AttentionLoop
{
    public const string Flag = "--attention-loop";

    public static void Run(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 20;
        string model = args.Length > 1 ? args[1] : "vit-tiny";
        bool forwardOnly = args.Length > 2 && args[2] == "forward";
        var (heads, d) = model switch
        {
            "vit-tiny" => (3, 64),
            "vit-micro" => (4, 32),
            _ => throw new ArgumentException($"--attention-loop: model '{model}' is not vit-tiny or vit-micro"),
        };
        var kern = new CpuKernels();
        var att = new PackedAttentionBuffers(kern, batch: 128, heads, n: 65, d, new Random(1));
        var sw = Stopwatch.StartNew();
        int iterations = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            att.Forward(kern);
            if (!forwardOnly) att.Backward(kern);
            iterations++;
        }
        double flops = (forwardOnly ? 1 : 3) * att.ForwardFlops; // nominal: the backward counts twice the forward
        Console.WriteLine($"attention {(forwardOnly ? "forward" : "forward + backward")}, {model}, batch 128, {Par.Workers} threads: {iterations} iterations, " +
            $"{sw.Elapsed.TotalMilliseconds / iterations:F2} ms each, {flops * iterations / sw.Elapsed.TotalSeconds / 1e9:F1} GFLOP/s");
    }
}
