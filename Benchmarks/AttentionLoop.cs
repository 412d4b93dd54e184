using System.Diagnostics;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// A steady workload for a sampling profiler: the CPU fused attention forward and backward on
/// vit-tiny's packed layout (batch 128, 3 heads, N = 65, d = 64), over and over for a number of
/// seconds, and nothing else in the process worth sampling. tools/perf-top.sh runs it under
/// `perf` and prints which functions the samples fall in (docs/performance.md has the readings).
/// Run: dotnet run -c Release --project Benchmarks -- --attention-loop [seconds, default 20]
/// </summary>
public static class AttentionLoop
{
    public const string Flag = "--attention-loop";

    public static void Run(double seconds)
    {
        var kern = new CpuKernels();
        var rnd = new Random(1);
        int batch = 128, heads = 3, n = 65, d = 64, bh = batch * heads, inner = heads * d;
        var lay = AttentionLayout.Packed(heads, n, d);
        int qkvLen = batch * n * 3 * inner, outLen = batch * n * inner, sliceLen = qkvLen - 2 * inner;
        var qkv = Interleaved.Filled(kern, qkvLen, rnd);
        var dqkv = kern.Allocate(qkvLen);
        var (q, k, v) = (kern.Slice(qkv, 0, sliceLen), kern.Slice(qkv, inner, sliceLen), kern.Slice(qkv, 2 * inner, sliceLen));
        var (dq, dk, dv) = (kern.Slice(dqkv, 0, sliceLen), kern.Slice(dqkv, inner, sliceLen), kern.Slice(dqkv, 2 * inner, sliceLen));
        var o = kern.Allocate(outLen); var lse = kern.Allocate(bh * n); var dO = Interleaved.Filled(kern, outLen, rnd);
        float scale = 1f / MathF.Sqrt(d);
        var sw = Stopwatch.StartNew();
        int iterations = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            kern.AttentionForward(q, k, v, o, lse, bh, n, d, scale, 0f, 0, lay);
            kern.AttentionBackward(q, k, v, o, lse, dO, dq, dk, dv, bh, n, d, scale, 0f, 0, lay);
            iterations++;
        }
        double flops = 12.0 * bh * n * n * d; // nominal: 4 BH N² d forward + 8 BH N² d backward
        Console.WriteLine($"attention forward + backward, vit-tiny, batch 128, {Par.Workers} threads: {iterations} iterations, " +
            $"{sw.Elapsed.TotalMilliseconds / iterations:F2} ms each, {flops * iterations / sw.Elapsed.TotalSeconds / 1e9:F1} GFLOP/s");
    }
}
