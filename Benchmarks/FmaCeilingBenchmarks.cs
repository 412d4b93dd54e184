using ViTScratch.Training.Commands;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The single-thread floating-point ceiling: a tight loop of independent FMAs on one core, no
/// memory traffic (the loops are Runner/Commands/FmaPeak.cs, which `vit bench --profile` uses too). 12 accumulator chains cover 2 FMA pipes x 4-5 cycles of latency, so the loop is
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
        public Config() => AddColumn(new GflopsColumn(), new OfFmaPeakColumn());
    }

    private const int Iterations = 1 << 20;
    private const int Chains = 12;

    [Benchmark]
    [Flops(2.0 * 16 * Chains * Iterations)]
    public float Vector512Fma() => FmaPeak.Loop512(Iterations);

    [Benchmark]
    [Flops(2.0 * 8 * Chains * Iterations)]
    public float Vector256Fma() => FmaPeak.Loop256(Iterations);
}
