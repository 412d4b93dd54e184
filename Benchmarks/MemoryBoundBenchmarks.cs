using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The memory-bound CPU kernels on vit-tiny's shapes (batch 128 x 65 tokens = 8320 rows, dim 192,
/// MLP 384; 3 heads of 65 x 65 scores; 1.8M parameters), in GB/s of compulsory traffic (each
/// input read once, each output written once), against a plain array copy of the same size
/// measured in the same run: the copy is this machine's practical bandwidth ceiling.
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*MemoryBoundBenchmarks*' --job short --inProcess
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class MemoryBoundBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new GbPerSecondColumn());
    }

    private const int Rows = 8320, Dim = 192, Mlp = 384, Params = 1_803_562;
    private const int ScoreRows = 128 * 3 * 65, ScoreCols = 65;
    private const long F = sizeof(float);

    private readonly CpuKernels _k = new();
    private DeviceBuffer _x = null!, _y = null!, _dy = null!, _dx = null!, _gamma = null!, _beta = null!, _mean = null!, _rstd = null!;
    private DeviceBuffer _h = null!, _hy = null!, _hdx = null!, _s = null!, _sy = null!, _bias = null!;
    private DeviceBuffer _p = null!, _g = null!, _m = null!, _v = null!;
    private float[] _copySrc = null!, _copyDst = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(0);
        DeviceBuffer Rand(int n)
        {
            var b = _k.Allocate(n);
            _k.Upload(Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), b);
            return b;
        }
        _x = Rand(Rows * Dim); _y = Rand(Rows * Dim); _dy = Rand(Rows * Dim); _dx = Rand(Rows * Dim);
        _gamma = Rand(Dim); _beta = Rand(Dim); _mean = Rand(Rows); _rstd = _k.Allocate(Rows);
        _k.LayerNormForward(_x, _gamma, _beta, _y, _mean, _rstd, Rows, Dim, 1e-5f);
        _h = Rand(Rows * Mlp); _hy = Rand(Rows * Mlp); _hdx = Rand(Rows * Mlp); _bias = Rand(Mlp);
        _s = Rand(ScoreRows * ScoreCols); _sy = Rand(ScoreRows * ScoreCols);
        _p = Rand(Params); _g = Rand(Params); _m = Rand(Params); _v = _k.Allocate(Params);
        _copySrc = new float[Rows * Mlp]; _copyDst = new float[Rows * Mlp];
    }

    [Benchmark(Baseline = true), Bytes(2 * Rows * Mlp * F)]
    public void ArrayCopy() => _copySrc.AsSpan().CopyTo(_copyDst);

    [Benchmark, Bytes(2 * Rows * Dim * F)]
    public void LayerNormForward() => _k.LayerNormForward(_x, _gamma, _beta, _y, _mean, _rstd, Rows, Dim, 1e-5f);

    [Benchmark, Bytes(4 * Rows * Dim * F)]
    public void LayerNormBackward() => _k.LayerNormBackward(_x, _gamma, _mean, _rstd, _dy, _dx, _gamma, _beta, Rows, Dim);

    [Benchmark, Bytes(2 * ScoreRows * ScoreCols * F)]
    public void SoftmaxForward() => _k.SoftmaxForward(_s, _sy, ScoreRows, ScoreCols);

    [Benchmark, Bytes(2 * Rows * Mlp * F)]
    public void GeluForward() => _k.GeluForward(_h, _hy, Rows * Mlp);

    [Benchmark, Bytes(4 * Rows * Mlp * F)]
    public void GeluBackward() => _k.GeluBackward(_h, _hy, _hdx, Rows * Mlp);

    [Benchmark, Bytes(2 * Rows * Mlp * F)]
    public void BiasAdd() => _k.AddBroadcast(_h, _bias, _hy, 1, Rows, Mlp, 1f);

    [Benchmark, Bytes(7 * Params * F)]
    public void AdamW() => _k.AdamWStep(_p, _g, _m, _v, Params, new AdamWArgs(1e-6f, 0.9f, 0.999f, 1e-8f, 0.05f, 10), null, 0f);
}

/// <summary>Compulsory bytes moved by one invocation of a benchmark method.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BytesAttribute(long bytes) : Attribute
{
    public long Bytes { get; } = bytes;
}

/// <summary>GB/s = [Bytes] of one invocation / mean time (1 GB = 1e9 bytes).</summary>
public sealed class GbPerSecondColumn : IColumn
{
    public string Id => nameof(GbPerSecondColumn);
    public string ColumnName => "GB/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Compulsory memory traffic per invocation / Mean";
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var bytes = benchmarkCase.Descriptor.WorkloadMethod.GetCustomAttribute<BytesAttribute>()?.Bytes;
        var stats = summary[benchmarkCase]?.ResultStatistics;
        if (bytes is null || stats is null || stats.Mean <= 0) return "-";
        return (bytes.Value / stats.Mean).ToString("F1"); // bytes per ns = GB/s
    }
}
