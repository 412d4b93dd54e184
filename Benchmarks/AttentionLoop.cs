using System.Diagnostics;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// A steady workload for a sampling profiler: the CPU fused attention forward and backward on
/// vit-tiny's packed layout (batch 128, 3 heads, N = 65, d = 64), over and over for a number of
/// seconds, and nothing else in the process worth sampling. tools/perf-top.sh runs it under
/// `perf` and prints which functions the samples fall in (docs/log/2026-performance-log.md has the readings).
/// Run: dotnet run -c Release --project Benchmarks -- --attention-loop [seconds, default 20]
/// </summary>
public static class AttentionLoop
{
    public const string Flag = "--attention-loop";

    public static void Run(double seconds)
    {
        var kern = new CpuKernels();
        var att = new PackedAttentionBuffers(kern, batch: 128, heads: 3, n: 65, d: 64, new Random(1));
        var sw = Stopwatch.StartNew();
        int iterations = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            att.Forward(kern);
            att.Backward(kern);
            iterations++;
        }
        double flops = 3 * att.ForwardFlops; // nominal: forward + backward (twice the forward)
        Console.WriteLine($"attention forward + backward, vit-tiny, batch 128, {Par.Workers} threads: {iterations} iterations, " +
            $"{sw.Elapsed.TotalMilliseconds / iterations:F2} ms each, {flops * iterations / sw.Elapsed.TotalSeconds / 1e9:F1} GFLOP/s");
    }
}
