using System.Diagnostics;

namespace ViTScratch.Training.Commands;

/// <summary>
/// This machine's memory roof, measured: a 64 MB array copied into another (far past any L3 of
/// the hosts this runs on), cut across one thread per logical processor, the fastest of 5 runs,
/// as GB/s of bytes read plus bytes written. `vit bench --profile` puts each memory-bound kernel
/// category against it, as it puts the matmul and attention against <see cref="FmaPeak"/>. A kernel
/// whose working set stays in the L3 can beat it (over 100%): the benchmarks' `--roofline` times
/// each kernel against a copy of its own size instead.
/// </summary>
public static class CopyRate
{
    private const int Floats = 16 << 20; // 64 MB each way

    /// <summary>GB/s (read + written) of the fastest of 5 copies of 64 MB across every core.</summary>
    public static double Measure()
    {
        var src = GC.AllocateUninitializedArray<float>(Floats);
        var dst = GC.AllocateUninitializedArray<float>(Floats);
        src.AsSpan().Fill(1f); // touch every page before timing
        dst.AsSpan().Clear();
        int threads = Environment.ProcessorCount;
        double fastest = double.MaxValue;
        for (int run = 0; run < 6; run++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                int start = (int)((long)Floats * t / threads), end = (int)((long)Floats * (t + 1) / threads);
                src.AsSpan(start, end - start).CopyTo(dst.AsSpan(start));
            });
            if (run > 0) fastest = Math.Min(fastest, sw.Elapsed.TotalSeconds); // run 0 warms the threads
        }
        return 2.0 * Floats * sizeof(float) / fastest / 1e9;
    }
}
