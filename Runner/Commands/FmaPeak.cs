using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Training.Commands;

/// <summary>
/// This CPU's floating-point roof, measured: 12 independent chains of fused multiply-adds with no
/// memory traffic, on one core or on every core at once (one thread per logical processor, the CPU
/// backend's worker count), in the widest vector the CPU
/// accelerates. 12 chains cover two FMA pipes x 4-5 cycles of latency, so the loop is bound by
/// FMA throughput, which is the most any kernel can get out of the core. `vit bench --profile`
/// puts the matmul's rate against it; the benchmarks' roofline uses it as the ceiling.
///
/// The chains start from twelve different values on purpose: identical chains are one chain to
/// a compiler that notices, and then the loop measures FMA latency, not throughput (a C version
/// of this loop did exactly that under gcc -O2 and overstated the roof 1.25x;
/// docs/log/2026-performance-log.md, "The FMA ceiling, corrected").
/// </summary>
public static class FmaPeak
{
    /// <summary>
    /// GFLOP/s of the FMA loop on one core, or on every core at once: the fastest of 9 runs of
    /// ~5-10 ms. The fastest, not the median, because this is a ceiling: other work (a hypervisor's
    /// steal, another process) can only slow a run, and on a 2-vCPU guest the median of 5 once read
    /// half the roof (106 of ~210 GFLOP/s with AVX-512 off), which put a step at 134% of "the peak".
    /// </summary>
    public static double Measure(bool allWorkers)
    {
        const long Steps = 2_000_000;
        double flopsPerStep = Vector512.IsHardwareAccelerated ? 384 : 192; // 12 FMAs x lanes x 2
        int threads = allWorkers ? Environment.ProcessorCount : 1;
        double fastest = double.MaxValue;
        Run(Steps / 10, allWorkers); // warm-up: the JIT
        for (int i = 0; i < 9; i++)
        {
            var sw = Stopwatch.StartNew();
            Run(Steps, allWorkers);
            fastest = Math.Min(fastest, sw.Elapsed.TotalSeconds);
        }
        return threads * Steps * flopsPerStep / fastest / 1e9;
    }

    // One dedicated thread per logical processor, released together, so every core runs the loop
    // at the same time (a thread pool would start them one by one).
    private static void Run(long steps, bool allWorkers)
    {
        if (!allWorkers) { Loop(steps); return; }
        using var start = new Barrier(Environment.ProcessorCount);
        var threads = new Thread[Environment.ProcessorCount];
        for (int t = 0; t < threads.Length; t++)
        {
            threads[t] = new Thread(() => { start.SignalAndWait(); Loop(steps); }) { IsBackground = true };
            threads[t].Start();
        }
        foreach (var t in threads) t.Join();
    }

    public static float Loop(long steps) => Vector512.IsHardwareAccelerated ? Loop512(steps) : Loop256(steps);

    /// <summary>12 chains of 512-bit FMAs, <paramref name="steps"/> steps: 384 flop per step.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Loop512(long steps)
    {
        var m = Vector512.Create(0.9999999f); var c = Vector512.Create(1e-7f);
        Vector512<float> a0 = Vector512.Create(1.00f), a1 = Vector512.Create(1.01f), a2 = Vector512.Create(1.02f), a3 = Vector512.Create(1.03f);
        Vector512<float> a4 = Vector512.Create(1.04f), a5 = Vector512.Create(1.05f), a6 = Vector512.Create(1.06f), a7 = Vector512.Create(1.07f);
        Vector512<float> a8 = Vector512.Create(1.08f), a9 = Vector512.Create(1.09f), a10 = Vector512.Create(1.10f), a11 = Vector512.Create(1.11f);
        for (long i = 0; i < steps; i++)
        {
            a0 = Vector512.FusedMultiplyAdd(a0, m, c); a1 = Vector512.FusedMultiplyAdd(a1, m, c);
            a2 = Vector512.FusedMultiplyAdd(a2, m, c); a3 = Vector512.FusedMultiplyAdd(a3, m, c);
            a4 = Vector512.FusedMultiplyAdd(a4, m, c); a5 = Vector512.FusedMultiplyAdd(a5, m, c);
            a6 = Vector512.FusedMultiplyAdd(a6, m, c); a7 = Vector512.FusedMultiplyAdd(a7, m, c);
            a8 = Vector512.FusedMultiplyAdd(a8, m, c); a9 = Vector512.FusedMultiplyAdd(a9, m, c);
            a10 = Vector512.FusedMultiplyAdd(a10, m, c); a11 = Vector512.FusedMultiplyAdd(a11, m, c);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    /// <summary>12 chains of 256-bit FMAs, <paramref name="steps"/> steps: 192 flop per step.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Loop256(long steps)
    {
        var m = Vector256.Create(0.9999999f); var c = Vector256.Create(1e-7f);
        Vector256<float> a0 = Vector256.Create(1.00f), a1 = Vector256.Create(1.01f), a2 = Vector256.Create(1.02f), a3 = Vector256.Create(1.03f);
        Vector256<float> a4 = Vector256.Create(1.04f), a5 = Vector256.Create(1.05f), a6 = Vector256.Create(1.06f), a7 = Vector256.Create(1.07f);
        Vector256<float> a8 = Vector256.Create(1.08f), a9 = Vector256.Create(1.09f), a10 = Vector256.Create(1.10f), a11 = Vector256.Create(1.11f);
        for (long i = 0; i < steps; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, m, c); a1 = Vector256.FusedMultiplyAdd(a1, m, c);
            a2 = Vector256.FusedMultiplyAdd(a2, m, c); a3 = Vector256.FusedMultiplyAdd(a3, m, c);
            a4 = Vector256.FusedMultiplyAdd(a4, m, c); a5 = Vector256.FusedMultiplyAdd(a5, m, c);
            a6 = Vector256.FusedMultiplyAdd(a6, m, c); a7 = Vector256.FusedMultiplyAdd(a7, m, c);
            a8 = Vector256.FusedMultiplyAdd(a8, m, c); a9 = Vector256.FusedMultiplyAdd(a9, m, c);
            a10 = Vector256.FusedMultiplyAdd(a10, m, c); a11 = Vector256.FusedMultiplyAdd(a11, m, c);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
