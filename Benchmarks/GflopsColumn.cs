using ViTScratch.Training.Commands;
using System.Reflection;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>A benchmark parameter that knows how many floating-point operations one invocation of a method does.</summary>
public interface IHasFlops
{
    double FlopsFor(string method);
}

/// <summary>Floating-point operations of one invocation of a benchmark method whose parameters do not say.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class FlopsAttribute(double flops) : Attribute
{
    public double Flops { get; } = flops;
}

/// <summary>
/// GFLOP/s = flops of one invocation / mean time of one invocation. Flops come from a parameter
/// implementing <see cref="IHasFlops"/>, else from a [Flops] attribute on the method; a method
/// with neither shows "-".
/// </summary>
public sealed class GflopsColumn : IColumn
{
    public string Id => nameof(GflopsColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Floating-point throughput: flops per invocation / Mean (1 GFLOP/s = 1e9 flop/s)";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? flops = FlopsOf(benchmarkCase);
        var stats = summary[benchmarkCase]?.ResultStatistics;
        if (flops is null || stats is null || stats.Mean <= 0) return "-";
        return (flops.Value / stats.Mean).ToString("F1"); // flop per ns = GFLOP/s
    }

    internal static double? FlopsOf(BenchmarkCase benchmarkCase)
    {
        foreach (var p in benchmarkCase.Parameters.Items)
            if (p.Value is IHasFlops f) return f.FlopsFor(benchmarkCase.Descriptor.WorkloadMethod.Name);
        return benchmarkCase.Descriptor.WorkloadMethod.GetCustomAttribute<FlopsAttribute>()?.Flops;
    }
}

/// <summary>
/// The GFLOP/s column as a fraction of this machine's roof: the FMA loop on every core
/// (Runner/Commands/FmaPeak.cs), measured once, in the process that prints the summary, when the
/// column is first shown. Single-threaded benchmarks (the FMA loop itself) show their share of all
/// cores. Measured after the benchmarks rather than between them, so on a shared host read it
/// next to `--roofline`, which measures the roof before and after in one process.
/// </summary>
public sealed class OfFmaPeakColumn : IColumn
{
    private static readonly Lazy<double> Peak = new(() => FmaPeak.Measure(allWorkers: true));

    public string Id => nameof(OfFmaPeakColumn);
    public string ColumnName => "of FMA peak";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 1;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "GFLOP/s / the FMA loop's GFLOP/s on every core of this machine, measured when the summary is printed";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? flops = GflopsColumn.FlopsOf(benchmarkCase);
        var stats = summary[benchmarkCase]?.ResultStatistics;
        if (flops is null || stats is null || stats.Mean <= 0) return "-";
        return $"{flops.Value / stats.Mean / Peak.Value:P0}"; // flop per ns = GFLOP/s
    }
}
