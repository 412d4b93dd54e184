using BenchmarkDotNet.Running;

namespace ViTScratch.Benchmarks;

/// <summary>
/// Every benchmark class in this assembly, picked with BenchmarkDotNet's own command line, e.g.
///   dotnet run -c Release --project Benchmarks -- --filter '*MatMul*'
///   dotnet run -c Release --project Benchmarks -- --filter '*Attention*' --job short   (quick: 3 iterations)
///   dotnet run -c Release --project Benchmarks -- --list flat                          (what exists)
/// See docs/performance.md for the measured numbers.
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
