using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The single-thread floating-point ceiling: a tight loop of independent FMAs on one core, no
/// memory traffic. 12 accumulator chains cover 2 FMA pipes x 4-5 cycles of latency, so the loop is
/// throughput-bound. Matmul efficiency in docs/performance.md is quoted against this number.
/// The Vector512 method measures the hardware only where Vector512.IsHardwareAccelerated
/// (AVX-512); elsewhere .NET emulates Vector512 in software and the number shows that cost.
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*FmaCeiling*'
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class FmaCeilingBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new GflopsColumn());
    }

    private const int Iterations = 1 << 20;
    private const int Chains = 12;

    [Benchmark]
    [Flops(2.0 * 16 * Chains * Iterations)]
    public float Vector512Fma() => Loop512(Iterations);

    [Benchmark]
    [Flops(2.0 * 8 * Chains * Iterations)]
    public float Vector256Fma() => Loop256(Iterations);

    // Twelve chains from twelve starting values: identical chains are one chain to a compiler that
    // notices (gcc did, in tools/fma-ceiling.c, docs/performance.md "The FMA ceiling, corrected").
    /// <summary>12 independent chains of 512-bit FMAs, <paramref name="iters"/> steps: 384 flop per step.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static float Loop512(long iters)
    {
        var m = Vector512.Create(0.9999999f); var c = Vector512.Create(1e-7f);
        Vector512<float> a0 = Vector512.Create(1.00f), a1 = Vector512.Create(1.01f), a2 = Vector512.Create(1.02f), a3 = Vector512.Create(1.03f);
        Vector512<float> a4 = Vector512.Create(1.04f), a5 = Vector512.Create(1.05f), a6 = Vector512.Create(1.06f), a7 = Vector512.Create(1.07f);
        Vector512<float> a8 = Vector512.Create(1.08f), a9 = Vector512.Create(1.09f), a10 = Vector512.Create(1.10f), a11 = Vector512.Create(1.11f);
        for (long i = 0; i < iters; i++)
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

    /// <summary>12 independent chains of 256-bit FMAs, <paramref name="iters"/> steps: 192 flop per step.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static float Loop256(long iters)
    {
        var m = Vector256.Create(0.9999999f); var c = Vector256.Create(1e-7f);
        Vector256<float> a0 = Vector256.Create(1.00f), a1 = Vector256.Create(1.01f), a2 = Vector256.Create(1.02f), a3 = Vector256.Create(1.03f);
        Vector256<float> a4 = Vector256.Create(1.04f), a5 = Vector256.Create(1.05f), a6 = Vector256.Create(1.06f), a7 = Vector256.Create(1.07f);
        Vector256<float> a8 = Vector256.Create(1.08f), a9 = Vector256.Create(1.09f), a10 = Vector256.Create(1.10f), a11 = Vector256.Create(1.11f);
        for (long i = 0; i < iters; i++)
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
