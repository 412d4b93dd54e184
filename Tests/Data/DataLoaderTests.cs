using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

public class DataLoaderTests
{
    private static DataLoaderOptions FullAugment(int workers, int batch = 16) => new()
    {
        BatchSize = batch, Seed = 1234, Workers = workers, CropPadding = 2, HorizontalFlip = true,
        RandAugmentOps = 2, RandAugmentMagnitude = 9, MixupAlpha = 0.8f, CutMixAlpha = 1.0f,
    };

    /// <summary>Copies everything a batch carries (the batch buffers are recycled on dispose).</summary>
    private static List<(float[] Images, int[] A, int[] B, float Lambda, int[] Indices)> Collect(DataLoader loader, int epoch, int start = 0)
    {
        var list = new List<(float[], int[], int[], float, int[])>();
        foreach (var b in loader.GetEpoch(epoch, start))
        {
            using (b)
                list.Add((b.ImagesSpan.ToArray(), b.LabelsASpan.ToArray(), b.LabelsBSpan.ToArray(), b.Lambda,
                    b.SampleIndices.AsSpan(0, b.Count).ToArray()));
        }
        return list;
    }

    private static void AssertSameBatches(List<(float[] Images, int[] A, int[] B, float Lambda, int[] Indices)> x,
        List<(float[] Images, int[] A, int[] B, float Lambda, int[] Indices)> y)
    {
        Assert.Equal(x.Count, y.Count);
        for (int i = 0; i < x.Count; i++)
        {
            Assert.Equal(x[i].Indices, y[i].Indices);
            Assert.Equal(x[i].A, y[i].A);
            Assert.Equal(x[i].B, y[i].B);
            Assert.Equal(x[i].Lambda, y[i].Lambda);
            Assert.Equal(x[i].Images, y[i].Images); // bit-exact: same arithmetic in the same order
        }
    }

    [Fact]
    public void SameSeedAndEpoch_GiveIdenticalBatches_ForAnyWorkerCount()
    {
        var data = DataTestUtil.RandomDataset(129, 3, 7, 5, 10, seed: 1);
        List<(float[], int[], int[], float, int[])>? reference = null;
        foreach (int workers in new[] { 0, 1, 2, 3, 5 })
        {
            using var loader = new DataLoader(data, FullAugment(workers));
            var batches = Collect(loader, epoch: 3);
            if (reference == null) reference = batches;
            else AssertSameBatches(reference, batches);
            AssertSameBatches(reference, Collect(loader, epoch: 3)); // and again on the same loader
        }
        Assert.Contains(reference!, b => b.Item4 < 1f); // mixing really happened in some batches
    }

    [Fact]
    public void DifferentEpochsAndSeeds_GiveDifferentOrders()
    {
        var data = DataTestUtil.RandomDataset(65, 1, 4, 4, 3, seed: 2);
        using var a = new DataLoader(data, new DataLoaderOptions { BatchSize = 8, Seed = 1 });
        using var b = new DataLoader(data, new DataLoaderOptions { BatchSize = 8, Seed = 2 });
        Assert.NotEqual(a.EpochOrder(0), a.EpochOrder(1));
        Assert.NotEqual(a.EpochOrder(0), b.EpochOrder(0));
        Assert.Equal(a.EpochOrder(5), a.EpochOrder(5));
    }

    [Theory]
    [InlineData(129, 16, false, 0)]
    [InlineData(129, 16, false, 2)]
    [InlineData(129, 16, true, 2)]
    [InlineData(1, 7, false, 2)]
    [InlineData(7, 7, true, 3)]
    [InlineData(65, 1, false, 2)]
    public void EverySampleOncePerEpoch_AndLabelsFollowSamples(int count, int batch, bool dropLast, int workers)
    {
        var data = DataTestUtil.RandomDataset(count, 1, 3, 3, 5, seed: count + batch);
        using var loader = new DataLoader(data, new DataLoaderOptions { BatchSize = batch, DropLast = dropLast, Workers = workers, Seed = 9 });
        var seen = new List<int>();
        int batches = 0;
        foreach (var b in loader.GetEpoch(2))
        {
            using (b)
            {
                Assert.Equal(batches, b.Index);
                Assert.Equal(2, b.Epoch);
                Assert.True(b.Count == batch || (!dropLast && b.Index == loader.BatchesPerEpoch - 1));
                for (int i = 0; i < b.Count; i++)
                {
                    Assert.Equal(data.Labels[b.SampleIndices[i]], b.LabelsA[i]);
                    Assert.Equal(b.LabelsA[i], b.LabelsB[i]);
                }
                Assert.Equal(1f, b.Lambda);
                seen.AddRange(b.SampleIndices.AsSpan(0, b.Count).ToArray());
                batches++;
            }
        }
        Assert.Equal(loader.BatchesPerEpoch, batches);
        Assert.Equal(dropLast ? count / batch * batch : count, seen.Count);
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(loader.EpochOrder(2).Take(seen.Count), seen);
        if (!dropLast) Assert.Equal(Enumerable.Range(0, count), seen.Order());
    }

    [Fact]
    public void Normalisation_MatchesMeanStdFormula()
    {
        var data = DataTestUtil.RandomDataset(7, 3, 5, 9, 4, seed: 3);
        using var loader = new DataLoader(data, DataLoaderOptions.ForEvaluation(4));
        int k = 0;
        foreach (var b in loader.GetEpoch(0))
            using (b)
                for (int i = 0; i < b.Count; i++, k++)
                {
                    Assert.Equal(k, b.SampleIndices[i]); // evaluation order is the dataset order
                    var img = data.Image(k);
                    for (int j = 0; j < data.ImageSize; j++)
                    {
                        int c = j / (5 * 9);
                        double expected = (img[j] / 255.0 - data.Mean[c]) / data.Std[c];
                        // float32 evaluation of v·s + b: a few ulps of values of magnitude ≤ ~5.
                        Assert.Equal(expected, b.Images[i * data.ImageSize + j], 5e-6);
                    }
                }
        Assert.Equal(7, k);
    }

    [Fact]
    public void NormaliseOff_GivesPixelsOver255()
    {
        var data = DataTestUtil.RandomDataset(3, 1, 2, 3, 2, seed: 4);
        using var loader = new DataLoader(data, new DataLoaderOptions { BatchSize = 3, Shuffle = false, Normalise = false, Workers = 0 });
        using var b = loader.GetEpoch(0).Single();
        for (int j = 0; j < data.Pixels.Length; j++) Assert.Equal(data.Pixels[j] / 255f, b.Images[j], 1e-7);
    }

    [Fact]
    public void ResumeFromBatchK_MatchesTheUninterruptedEpoch()
    {
        var data = DataTestUtil.RandomDataset(129, 3, 6, 6, 10, seed: 5);
        using var loader = new DataLoader(data, FullAugment(2, batch: 10));
        var full = Collect(loader, epoch: 7);
        var resumed = Collect(loader, epoch: 7, start: 5);
        AssertSameBatches(full.Skip(5).ToList(), resumed);
        Assert.Empty(Collect(loader, 7, start: loader.BatchesPerEpoch));
    }

    [Fact]
    public void EarlyBreakAndManyEpochs_DoNotHangOrGrowThePool()
    {
        var data = DataTestUtil.RandomDataset(129, 3, 8, 8, 10, seed: 6);
        var options = FullAugment(3, batch: 4);
        options.PrefetchPerWorker = 2;
        using var loader = new DataLoader(data, options);
        for (int epoch = 0; epoch < 6; epoch++)
        {
            int n = 0;
            foreach (var b in loader.GetEpoch(epoch))
            {
                b.Dispose();
                if (epoch % 2 == 1 && ++n == 3) break; // leave odd epochs early
            }
        }
        // Alive at once: ≤ workers·prefetch queued + one being built per worker + the consumer's one.
        Assert.InRange(loader.AllocatedBatches, 1, 3 * 2 + 3 + 1);
    }

    [Fact]
    public void Cancellation_StopsTheEpoch()
    {
        var data = DataTestUtil.RandomDataset(129, 3, 8, 8, 10, seed: 7);
        using var loader = new DataLoader(data, FullAugment(2, batch: 4));
        using var cts = new CancellationTokenSource();
        int seen = 0;
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var b in loader.GetEpoch(0, 0, cts.Token))
            {
                b.Dispose();
                if (++seen == 2) cts.Cancel();
            }
        });
        Assert.True(seen <= 3);
    }

    [Fact]
    public void InvalidOptions_AreUserErrors()
    {
        var data = DataTestUtil.RandomDataset(3, 1, 2, 2, 2, seed: 8);
        Assert.Throws<ViTScratchException>(() => new DataLoader(data, new DataLoaderOptions { BatchSize = 0 }));
        Assert.Throws<ViTScratchException>(() => new DataLoader(data, new DataLoaderOptions { RandAugmentMagnitude = 11 }));
        Assert.Throws<ViTScratchException>(() => new DataLoader(data, new DataLoaderOptions { MixupAlpha = -1 }));
    }

    [Fact]
    public void DatasetDefaults_FlipForCifarOnly()
    {
        Assert.True(DataLoaderOptions.ForTraining(DatasetInfo.Cifar10, 128, 0).HorizontalFlip);
        Assert.Equal(4, DataLoaderOptions.ForTraining(DatasetInfo.Cifar100, 128, 0).CropPadding);
        Assert.False(DataLoaderOptions.ForTraining(DatasetInfo.FashionMnist, 128, 0).HorizontalFlip);
        Assert.False(DataLoaderOptions.ForTraining(DatasetInfo.Mnist, 128, 0).HorizontalFlip);
        var eval = DataLoaderOptions.ForEvaluation(100);
        Assert.False(eval.Shuffle || eval.DropLast || eval.HorizontalFlip || eval.CropPadding > 0 || eval.RandAugmentOps > 0);
    }
}
