using System.Reflection;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

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

    private static double? FlopsOf(BenchmarkCase benchmarkCase)
    {
        foreach (var p in benchmarkCase.Parameters.Items)
            if (p.Value is IHasFlops f) return f.FlopsFor(benchmarkCase.Descriptor.WorkloadMethod.Name);
        return benchmarkCase.Descriptor.WorkloadMethod.GetCustomAttribute<FlopsAttribute>()?.Flops;
    }
}
