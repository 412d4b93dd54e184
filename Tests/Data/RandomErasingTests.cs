using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

/// <summary>
/// Random erasing against its definition (torchvision's RandomErasing, value 0): the rate at which
/// images are erased, the rectangle's area share and aspect ratio, that exactly that rectangle is
/// zeroed in every channel and nothing else changes, and that the loader applies it per sample,
/// reproducibly, only when asked.
/// </summary>
public class RandomErasingTests
{
    private static float[] Ones(int n) => Enumerable.Repeat(1f, n).ToArray();

    [Fact]
    public void ExactlyTheReportedRectangleIsZeroedInEveryChannel()
    {
        const int c = 3, h = 9, w = 13;
        int erased = 0;
        for (int s = 0; s < 200; s++)
        {
            var img = Ones(c * h * w);
            var rng = DataRandom.For(5, 0, 0, s);
            var box = RandomErasing.Apply(img, c, h, w, 1f, ref rng);
            if (box is not { } b) { Assert.All(img, v => Assert.Equal(1f, v)); continue; }
            erased++;
            Assert.InRange(b.Height, 1, h - 1);
            Assert.InRange(b.Width, 1, w - 1);
            Assert.InRange(b.Top, 0, h - b.Height);
            Assert.InRange(b.Left, 0, w - b.Width);
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        bool inside = y >= b.Top && y < b.Top + b.Height && x >= b.Left && x < b.Left + b.Width;
                        Assert.Equal(inside ? 0f : 1f, img[ch * h * w + y * w + x]);
                    }
        }
        // With p = 1 an image escapes only when all ten shape draws miss (rare at 9x13).
        Assert.InRange(erased, 190, 200);
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.25)]
    [InlineData(0.9)]
    public void ErasesAtTheRequestedRate(double p)
    {
        // 28x28: every drawn shape of area ≤ 33% fits unless its aspect is extreme, so almost every
        // decided image gets a box; the rate is p times the share that fits (measured with p = 1).
        const int n = 40_000, h = 28, w = 28;
        var img = new float[h * w];
        int Count(double prob)
        {
            int k = 0;
            for (int s = 0; s < n; s++)
            {
                var rng = DataRandom.For(1, 2, 3, s);
                if (RandomErasing.Apply(img, 1, h, w, (float)prob, ref rng) is not null) k++;
            }
            return k;
        }
        double fits = Count(1.0) / (double)n;
        Assert.InRange(fits, 0.98, 1.0);
        double rate = Count(p) / (double)n, expected = p * fits;
        double sigma = Math.Sqrt(expected * (1 - expected) / n);
        Assert.InRange(rate, expected - 5 * sigma, expected + 5 * sigma);
    }

    [Fact]
    public void AreaShareAndAspectFollowTheirDistributions()
    {
        // Large image so rounding hardly moves area or ratio: area share uniform in [0.02, 0.33]
        // (mean 0.175), log aspect uniform in [ln 0.3, ln 3.3] (mean ln(0.99), symmetric about it).
        const int h = 200, w = 200, n = 20_000;
        var img = new float[h * w];
        double sumArea = 0, sumLog = 0, minArea = 1, maxArea = 0;
        int tall = 0;
        for (int s = 0; s < n; s++)
        {
            var rng = DataRandom.For(9, 0, 0, s);
            var b = RandomErasing.Apply(img, 1, h, w, 1f, ref rng)!.Value;
            double area = (double)b.Height * b.Width / (h * w);
            sumArea += area; minArea = Math.Min(minArea, area); maxArea = Math.Max(maxArea, area);
            sumLog += Math.Log((double)b.Height / b.Width);
            if (b.Height > b.Width) tall++;
        }
        // Uniform on [0.02, 0.33]: sd 0.0895, so the mean of 20,000 has sd 0.0006 (plus rounding).
        Assert.InRange(sumArea / n, 0.175 - 0.004, 0.175 + 0.004);
        Assert.InRange(minArea, 0.018, 0.03);
        Assert.InRange(maxArea, 0.30, 0.345);
        double meanLog = (Math.Log(0.3) + Math.Log(3.3)) / 2; // ~ -0.005
        Assert.InRange(sumLog / n, meanLog - 0.03, meanLog + 0.03);
        Assert.InRange(tall / (double)n, 0.47, 0.53);
    }

    [Fact]
    public void LoaderErasesOnlyWhenAskedAndTheSameWayEveryTime()
    {
        const int c = 3, h = 12, w = 12;
        var data = DataTestUtil.RandomDataset(40, c, h, w, 4, seed: 2);
        float[] Epoch(float p, int workers)
        {
            using var loader = new DataLoader(data, new DataLoaderOptions
            {
                BatchSize = 8, Seed = 7, Workers = workers, ErasingProbability = p,
            });
            var all = new List<float>();
            foreach (var b in loader.GetEpoch(0)) using (b) all.AddRange(b.ImagesSpan.ToArray());
            return all.ToArray();
        }
        var plain = Epoch(0f, 2);
        var erased = Epoch(0.5f, 2);
        Assert.Equal(erased, Epoch(0.5f, 0)); // per-sample draws: the worker count changes nothing
        int size = c * h * w, changedImages = 0;
        for (int i = 0; i < plain.Length / size; i++)
        {
            bool changed = false;
            for (int j = i * size; j < (i + 1) * size; j++)
            {
                if (erased[j] == plain[j]) continue;
                Assert.Equal(0f, erased[j]); // the only change is a pixel set to the mean (0 after normalising)
                changed = true;
            }
            if (changed) changedImages++;
        }
        Assert.InRange(changedImages, 8, 32); // about half of 40
    }

    [Fact]
    public void AProbabilityOutsideZeroToOneIsRefused()
    {
        var data = DataTestUtil.RandomDataset(4, 1, 4, 4, 2, seed: 1);
        var e = Assert.Throws<ViTScratchException>(() =>
            new DataLoader(data, new DataLoaderOptions { ErasingProbability = 1.5f }));
        Assert.Contains("erasing probability", e.Message);
    }
}
