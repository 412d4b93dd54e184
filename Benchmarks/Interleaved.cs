using System.Diagnostics;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// A/B timing for the shared, noisy development host: every round runs side A then side B on the
/// same buffers, so the host's drift (other tenants, frequency) hits both alike, and the medians
/// of the rounds and their ratio are printed as a markdown table.
///
/// Why not BenchmarkDotNet for these: it times one method after the other, minutes apart. On the
/// 2-core host an identical control came out 1.48x apart that way (docs/performance.md), which
/// hides the 5-20% effects these comparisons are about.
/// </summary>
public static class Interleaved
{
    /// <summary>One row of the table: a name, the work per call (flops, or bytes for a GB/s column; 0 = no rate), and the two sides.</summary>
    public sealed record Case(string Name, double Flops, Action A, Action B);

    /// <param name="rate">the unit of Case.Flops per second: GFLOP/s, or GB/s where Flops counts bytes</param>
    public static void Compare(string title, string a, string b, IReadOnlyList<Case> cases, int rounds = 25, int warmup = 5, string rate = "GFLOP/s")
    {
        Console.WriteLine($"{title}; medians of {rounds} interleaved rounds");
        Console.WriteLine($"| case | {a} ms | {rate} | {b} ms | {rate} | {a} / {b} |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var c in cases)
        {
            for (int w = 0; w < warmup; w++) { c.A(); c.B(); }
            var ta = new double[rounds];
            var tb = new double[rounds];
            var sw = new Stopwatch();
            for (int r = 0; r < rounds; r++)
            {
                sw.Restart(); c.A(); ta[r] = sw.Elapsed.TotalMilliseconds;
                sw.Restart(); c.B(); tb[r] = sw.Elapsed.TotalMilliseconds;
            }
            double ma = Median(ta), mb = Median(tb);
            string Rate(double ms) => c.Flops > 0 ? $"{c.Flops / ms / 1e6:F1}" : "";
            Console.WriteLine($"| {c.Name} | {ma:F2} | {Rate(ma)} | {mb:F2} | {Rate(mb)} | {ma / mb:F2} |");
        }
    }

    /// <summary>A buffer of n uniform values in [-0.5, 0.5) on the CPU backend.</summary>
    internal static DeviceBuffer Filled(CpuKernels k, int n, Random rnd)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        var b = k.Allocate(n);
        k.Upload(x, b);
        return b;
    }

    /// <summary>A pinned array of n uniform values in [-0.5, 0.5), for harnesses that call kernels through pointers.</summary>
    internal static float[] PinnedRandom(int n, Random rnd)
    {
        var x = GC.AllocateUninitializedArray<float>(n, pinned: true);
        for (int i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        return x;
    }

    private static double Median(double[] x)
    {
        Array.Sort(x);
        return x[x.Length / 2];
    }
}
