using ViTScratch.Tests.Cpu;
using ViTScratch.Training.Data;

namespace ViTScratch.Tests.Data;

/// <summary>
/// A folder larger than its cache keeps the process's memory bounded by the cache, not by the
/// folder: after the scan and throughout an epoch that streams the rest. Runs alone (the
/// allocation collection): GC.GetTotalMemory counts every thread's objects, so another test class
/// running at the same time would be measured too.
/// </summary>
[Collection(AllocationCollection.Name)]
public class ImageFolderMemoryTests : IDisposable
{
    private readonly TempDir _dir = new();

    [Fact]
    public void MemoryStaysBoundedByTheCacheWhileTheRestStreams()
    {
        // 300 images decoded at 128x128x3 = 49,152 bytes each: 14.1 MiB; the cache holds 1 MiB of it.
        const int ImageBytes = 128 * 128 * 3, Batch = 2, Workers = 2, Prefetch = 2;
        ImageFolderStreamingTests.Folder(_dir.Path, 100, 4, "a", "b", "c");
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var data = ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 128, CacheMb = 1 })!;
        long afterScan = GC.GetTotalMemory(forceFullCollection: true) - before;
        long folder = 300L * ImageBytes;

        // What may stay alive: the cache, and while streaming the batches in flight (each worker's
        // queue, the one it is filling, the consumer's) with each worker's two scratch images. The
        // rest (file names, labels, the runtime's own) gets 1.5 MiB: a tenth of the folder.
        long cache = 1 << 20, slack = 3 << 19;
        long batches = (Workers * (Prefetch + 1) + 1) * (long)Batch * ImageBytes * sizeof(float) + Workers * 2L * ImageBytes;
        Assert.True(cache + slack + batches < folder / 2, "the bound must be far below the folder, or the test could not tell");

        Assert.True(afterScan < cache + slack, $"after the scan {afterScan >> 10} KiB stay alive; the cache is {cache >> 10} KiB");
        Assert.Equal((1 << 20) / ImageBytes, data.CachedCount);

        long peak = 0;
        using (var loader = new DataLoader(data, new DataLoaderOptions { BatchSize = Batch, Workers = Workers, PrefetchPerWorker = Prefetch, Seed = 1 }))
            foreach (var batch in loader.GetEpoch(0))
                using (batch)
                    peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: true) - before);
        Assert.True(peak < cache + slack + batches, $"while streaming {peak >> 10} KiB were alive; the bound is {(cache + slack + batches) >> 10} KiB");
        GC.KeepAlive(data);
    }

    public void Dispose() => _dir.Dispose();
}
