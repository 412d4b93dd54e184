using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using ViTScratch.Training.Data;

namespace ViTScratch.Benchmarks;

/// <summary>
/// DataLoader throughput on CIFAR-shaped synthetic data: 50,000 random 32x32x3 images, batch 128,
/// 2 workers, one full epoch per operation. Images/s = 50,000 / (mean time per op). The consumer
/// only disposes batches, so this is the loader's maximum rate; training consumes ~400 img/s on
/// the 2-core CPU, and the loader should beat that by ≥5x to never stall it.
///
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*DataLoaderBenchmarks*'
/// (images/s = 1e9 / the reported ns per image).
/// </summary>
[Config(typeof(InProcessConfig))]
public class DataLoaderBenchmarks
{
    /// <summary>
    /// In-process: BenchmarkDotNet's generated project rebuilds the whole solution and exceeds its
    /// 2-minute build timeout on the 2-core machine. An operation is a whole epoch (hundreds of ms),
    /// so in-process measurement overhead is negligible.
    /// </summary>
    private sealed class InProcessConfig : ManualConfig
    {
        public InProcessConfig()
        {
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance)
                .WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(8));
            AddDiagnoser(MemoryDiagnoser.Default);
        }
    }

    private const int Images = 50_000;
    private ImageDataset _data = null!;
    private DataLoader _cropFlip = null!, _randAugment = null!;
    private int _epoch;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        var pixels = new byte[Images * 3 * 32 * 32];
        rng.NextBytes(pixels);
        var labels = new byte[Images];
        for (int i = 0; i < Images; i++) labels[i] = (byte)rng.Next(10);
        var info = DatasetInfo.Cifar10;
        _data = new ImageDataset("synthetic-cifar", Images, 3, 32, 32, pixels, labels, info.ClassNames, info.Mean, info.Std);

        var options = DataLoaderOptions.ForTraining(info, batchSize: 128, seed: 1);
        options.Workers = 2;
        _cropFlip = new DataLoader(_data, options);

        var ra = DataLoaderOptions.ForTraining(info, batchSize: 128, seed: 1);
        ra.Workers = 2;
        ra.RandAugmentOps = 2;
        ra.RandAugmentMagnitude = 9;
        _randAugment = new DataLoader(_data, ra);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cropFlip.Dispose();
        _randAugment.Dispose();
    }

    private int Drain(DataLoader loader)
    {
        int n = 0;
        foreach (var b in loader.GetEpoch(_epoch++))
            using (b) n += b.Count;
        return n;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Images, Description = "crop+flip, 2 workers (per image)")]
    public int CropFlip() => Drain(_cropFlip);

    [Benchmark(OperationsPerInvoke = Images, Description = "crop+flip+RandAugment(2, 9), 2 workers (per image)")]
    public int CropFlipRandAugment() => Drain(_randAugment);
}
