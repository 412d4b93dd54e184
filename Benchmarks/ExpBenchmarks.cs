using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The float exp that softmax, attention and GELU use (Simd.Exp, Cephes expf) against .NET's
/// Vector256.Exp / Vector512.Exp, which widen every lane to double for their polynomial. 4096
/// softmax-like inputs in [-30, 10], one pass; the ratio is what matters, the same run measures both.
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*ExpBenchmarks*' --job short --inProcess
/// </summary>
public class ExpBenchmarks
{
    private const int N = 4096;
    private readonly float[] _x = new float[N], _y = new float[N];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        for (int i = 0; i < N; i++) _x[i] = (float)(rng.NextDouble() * 40 - 30);
    }

    [Benchmark(Baseline = true)]
    public void DotNetVectorExp()
    {
        if (Vector512.IsHardwareAccelerated)
            for (int i = 0; i < N; i += 16) Vector512.Exp(Vector512.Create(_x, i)).CopyTo(_y, i);
        else
            for (int i = 0; i < N; i += 8) Vector256.Exp(Vector256.Create(_x, i)).CopyTo(_y, i);
    }

    [Benchmark]
    public void SimdExp()
    {
        if (Vector512.IsHardwareAccelerated)
            for (int i = 0; i < N; i += 16) Simd.Exp(Vector512.Create(_x, i)).CopyTo(_y, i);
        else
            for (int i = 0; i < N; i += 8) Simd.Exp(Vector256.Create(_x, i)).CopyTo(_y, i);
    }
}
