using ViTScratch.Tests.Data;

namespace ViTScratch.Tests.Training;

/// <summary>
/// A tiny Fashion-MNIST written as the four gzipped IDX files the runner reads: 28x28 images with
/// learnable structure (class c brightens row band c), so a few steps of training move the loss.
/// </summary>
internal static class TinyFashionMnist
{
    public static void Write(string dir, int train = 96, int test = 40, int seed = 5)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(seed);
        foreach (var (prefix, count) in new[] { ("train", train), ("t10k", test) })
        {
            var labels = new byte[count];
            var pixels = new byte[count * 28 * 28];
            for (int i = 0; i < count; i++)
            {
                labels[i] = (byte)rng.Next(10);
                for (int p = 0; p < 28 * 28; p++)
                    pixels[i * 784 + p] = (byte)(rng.Next(60) + (p / 28 / 3 == labels[i] ? 150 : 0));
            }
            File.WriteAllBytes(Path.Combine(dir, $"{prefix}-images-idx3-ubyte.gz"), DataTestUtil.Gzip(DataTestUtil.IdxImages(count, 28, 28, pixels)));
            File.WriteAllBytes(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte.gz"), DataTestUtil.Gzip(DataTestUtil.IdxLabels(labels)));
        }
    }
}
