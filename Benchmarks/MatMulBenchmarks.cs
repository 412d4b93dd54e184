using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The CPU matmul on the ViT's dominant shapes (ViT-Tiny-ish, batch 128, 65 tokens: 8320 rows),
/// packed/blocked kernel vs the naive baseline, with GFLOP/s.
///   Qkv:        [8320,192] x [192,576]        x W of the qkv projection
///   Proj:       [8320,384] x [384,192]        x W of the MLP's second linear
///   WeightGrad: [576,8320] x [8320,192], A stored [8320,576] (TransA): dW = xᵀ dy
///   Scores:     384 x [65,64] x [64,65]       one attention score block per (image, head)
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*MatMulBenchmarks*'
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class MatMulBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new GflopsColumn(), new OfFmaPeakColumn());
    }

    // Names stay under BenchmarkDotNet's 20-character parameter column: M x K x N (T = TransA).
    public sealed record Case(string Name, MatMulShape Shape) : IHasFlops
    {
        public double FlopsFor(string method) => Shape.Flops;
        public override string ToString() => Name;
    }

    public static IEnumerable<Case> Cases =>
    [
        new("Qkv 8320x192x576", MatMulShape.Single(8320, 576, 192)),
        new("Proj 8320x384x192", MatMulShape.Single(8320, 192, 384)),
        new("WGrad 576x8320x192T", MatMulShape.Single(576, 192, 8320, transA: true)),
        new("Scores 384x65x64x65", MatMulShape.Batched(384, 65, 65, 64)),
    ];

    [ParamsSource(nameof(Cases))]
    public Case Shape { get; set; } = null!;

    private readonly CpuKernels _kernels = new();
    private DeviceBuffer _a = null!, _b = null!, _c = null!;

    [GlobalSetup]
    public void Setup()
    {
        var s = Shape.Shape;
        var rnd = new Random(1);
        _a = Filled(s.Batch * s.M * s.K, rnd);
        _b = Filled(s.Batch * s.K * s.N, rnd);
        _c = _kernels.Allocate(s.Batch * s.M * s.N);
        _kernels.MatMul(_a, _b, _c, s, 1f, false); // grow the per-thread packing buffers before measuring
    }

    [Benchmark]
    public void Packed() => _kernels.MatMul(_a, _b, _c, Shape.Shape, 1f, false);

    [Benchmark(Baseline = true)]
    public void Naive() => NaiveMatMul.Run(_a, _b, _c, Shape.Shape, 1f, false);

    private DeviceBuffer Filled(int n, Random rnd)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        var buf = _kernels.Allocate(n);
        _kernels.Upload(x, buf);
        return buf;
    }
}
