using SkiaSharp;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Training;
using ViTScratch.Training.Data;

namespace ViTScratch.Tests.Data;

/// <summary>
/// An image folder larger than --cache-mb: what fits stays decoded, the rest is decoded again by the
/// loader's workers on every pass. The batches must not depend on where the cut falls, the
/// fingerprint and statistics neither, a streamed file that goes bad during a run is left out with
/// a warning (or stops a --strict run), and a whole run trains to the same weights either way.
/// </summary>
public class ImageFolderStreamingTests : IDisposable
{
    private readonly TempDir _dir = new();

    /// <summary>
    /// Tiny noisy PNGs (side x side), <paramref name="perClass"/> in each class folder under
    /// <paramref name="root"/>; decoded at a larger --image-size they take many bytes each, which
    /// lets a megabyte of cache hold only some of them.
    /// </summary>
    internal static void Folder(string root, int perClass, int side, params string[] classes)
    {
        var rng = new Random(root.Length * 31 + perClass);
        foreach (var name in classes)
        {
            string dir = Path.Combine(root, name);
            Directory.CreateDirectory(dir);
            for (int i = 0; i < perClass; i++)
            {
                using var bmp = new SKBitmap(new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Unpremul));
                for (int y = 0; y < side; y++)
                    for (int x = 0; x < side; x++)
                        bmp.SetPixel(x, y, new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
                using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(dir, $"{i:D3}.png"), data.ToArray());
            }
        }
    }

    private static DataLoaderOptions Augmented(int workers) => new()
    {
        BatchSize = 16, Seed = 7, Shuffle = true, Workers = workers, CropPadding = 4, HorizontalFlip = true,
        RandAugmentOps = 2, RandAugmentMagnitude = 9, MixupAlpha = 0.8f, CutMixAlpha = 1f,
    };

    private static List<(int[] Indices, float[] Images, int[] A, int[] B, float Lambda)> Batches(ImageDataset data, DataLoaderOptions o, int epoch)
    {
        using var loader = new DataLoader(data, o);
        var all = new List<(int[], float[], int[], int[], float)>();
        foreach (var b in loader.GetEpoch(epoch))
            using (b) all.Add((b.SampleIndices[..b.Count], b.ImagesSpan.ToArray(), b.LabelsASpan.ToArray(), b.LabelsBSpan.ToArray(), b.Lambda));
        return all;
    }

    private static void AssertSameBatches(ImageDataset expected, ImageDataset actual, DataLoaderOptions o, int epoch)
    {
        var want = Batches(expected, o, epoch);
        var got = Batches(actual, o, epoch);
        Assert.Equal(want.Count, got.Count);
        for (int b = 0; b < want.Count; b++)
        {
            Assert.Equal(want[b].Indices, got[b].Indices);
            Assert.True(want[b].Images.AsSpan().SequenceEqual(got[b].Images), $"epoch {epoch} batch {b}: the images differ");
            Assert.Equal(want[b].A, got[b].A);
            Assert.Equal(want[b].B, got[b].B);
            Assert.Equal(want[b].Lambda, got[b].Lambda);
        }
    }

    // The same images held in one array: the fingerprint's reference definition.
    private static ImageDataset InOneArray(ImageDataset d) => new(d.Name, d.Count, d.Channels, d.Height, d.Width,
        Enumerable.Range(0, d.Count).SelectMany(i => d.Image(i).ToArray()).ToArray(), d.Labels, d.ClassNames, d.Mean, d.Std);

    [Fact]
    public void BatchesAreBitIdenticalWhetherEveryImageIsCachedSomeAreOrNone()
    {
        // 150 images of 64x64x3 = 12,288 bytes: 1.76 MiB decoded, so 1 MiB holds the first 85.
        Folder(_dir.Path, 50, 6, "a", "b", "c");
        ImageDataset Load(long cacheMb) => ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 64, CacheMb = cacheMb })!;
        var cached = Load(8192);
        var part = Load(1);
        var streamed = Load(0);
        Assert.Equal((150, 85, 0), (cached.CachedCount, part.CachedCount, streamed.CachedCount));

        Assert.Equal(cached.Fingerprint(), part.Fingerprint());
        Assert.Equal(cached.Fingerprint(), streamed.Fingerprint());
        Assert.Equal(cached.Mean, streamed.Mean);
        Assert.Equal(cached.Std, streamed.Std);

        // Every augmentation that draws random numbers, over two epochs, with workers and without.
        foreach (int workers in new[] { 0, 2 })
            for (int epoch = 0; epoch < 2; epoch++)
            {
                AssertSameBatches(cached, part, Augmented(workers), epoch);
                AssertSameBatches(cached, streamed, Augmented(workers), epoch);
            }
        AssertSameBatches(cached, streamed, DataLoaderOptions.ForEvaluation(32), 0);

        // A carved validation split of a streamed folder is a view of the same files: the same
        // images, and fingerprints by the same definition as a dataset held in one array.
        var (trainC, valC) = ValidationSplit.Split(cached, 0.2, seed: 3);
        var (trainS, valS) = ValidationSplit.Split(streamed, 0.2, seed: 3);
        Assert.Equal(valC!.Fingerprint(), valS!.Fingerprint());
        Assert.Equal(trainC.Take(40).Fingerprint(), trainS.Take(40).Fingerprint());
        AssertSameBatches(valC, valS, DataLoaderOptions.ForEvaluation(32), 0);
        var inOneArray = InOneArray(valS);
        Assert.Equal(inOneArray.Fingerprint(), valS.Fingerprint());
        Assert.Equal(InOneArray(streamed).Fingerprint(), streamed.Fingerprint()); // the scan's hash, taken as it decodes
        Assert.Throws<InvalidOperationException>(() => streamed.Pixels);
    }

    [Fact]
    public void TheRunsSplitsShareOneCacheBudgetTrainingFirst()
    {
        // 48x48x3 = 6,912 bytes an image: 1 MiB holds 151. Training (120 images) takes 120 of
        // them, validation (60) the remaining 31, and test (30) none: it streams.
        Folder(Path.Combine(_dir.Path, "train"), 40, 4, "a", "b", "c");
        Folder(Path.Combine(_dir.Path, "val"), 20, 4, "a", "b", "c");
        Folder(Path.Combine(_dir.Path, "test"), 10, 4, "a", "b", "c");
        var log = new StringWriter();
        var (train, val, test) = DatasetCatalog.LoadSplits("folder", _dir.Path,
            new DatasetOptions { Folder = new FolderOptions { ImageSize = 48, CacheMb = 1, Log = log } });
        Assert.Equal((120, 31, 0), (train.CachedCount, val!.CachedCount, test!.CachedCount));
        Assert.Contains("cache   val: 31 of 60 images held decoded", log.ToString());
        Assert.Contains("cache   test: 0 of 30 images held decoded", log.ToString());
        Assert.DoesNotContain("cache   train", log.ToString()); // all of it fits: nothing to say
    }

    [Fact]
    public void AStreamedFileThatGoesBadIsLeftOutWithOneWarningOrStopsAStrictRun()
    {
        Folder(_dir.Path, 10, 4, "a", "b");
        var log = new StringWriter();
        var data = ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 8, CacheMb = 0, Log = log })!;
        var cachedData = ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 8 })!;
        var strict = ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 8, CacheMb = 0, Strict = true })!;
        string corrupt = Path.Combine(_dir.Path, "a", "003.png"), removed = Path.Combine(_dir.Path, "b", "007.png");
        File.WriteAllBytes(corrupt, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        File.Delete(removed);

        var o = new DataLoaderOptions { BatchSize = 4, Shuffle = true, Seed = 1, Workers = 2, CropPadding = 2, HorizontalFlip = true };
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var batches = Batches(data, o, epoch);
            Assert.Equal(18, batches.Sum(b => b.Indices.Length));
            Assert.DoesNotContain(3, batches.SelectMany(b => b.Indices));      // a/003.png is image 3
            Assert.DoesNotContain(17, batches.SelectMany(b => b.Indices));     // b/007.png is image 10 + 7
            // The other images of a short batch keep their own crop and flip: each is the image
            // the intact folder's batch has at that sample's position.
            var intact = Batches(cachedData, o, epoch);
            for (int b = 0; b < intact.Count; b++)
            {
                int size = 3 * 8 * 8;
                for (int k = 0; k < batches[b].Indices.Length; k++)
                {
                    int at = Array.IndexOf(intact[b].Indices, batches[b].Indices[k]);
                    Assert.True(batches[b].Images.AsSpan(k * size, size).SequenceEqual(intact[b].Images.AsSpan(at * size, size)), $"epoch {epoch} batch {b} image {k}");
                }
            }
        }
        string text = log.ToString();
        // One warning per file however often it is met, and a count at the end of each pass.
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(text, "warning: skipped while streaming: .*" + System.Text.RegularExpressions.Regex.Escape(corrupt)));
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(text, "warning: skipped while streaming: .*" + System.Text.RegularExpressions.Regex.Escape(removed) + ".* removed"));
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(text, "warning: 2 images of the train split could not be read while streaming").Count);

        // Images held in the cache are not read again, so they are not affected.
        Assert.Equal(20, Batches(cachedData, o, 0).Sum(b => b.Indices.Length));

        // Scanned again now, the two files are skipped up front; the fingerprint (taken again,
        // decoding the streamed images) is that of the images that remain.
        var rescanned = ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 8, CacheMb = 0 })!;
        Assert.Equal(18, rescanned.Count);
        Assert.Equal(InOneArray(rescanned).Fingerprint(), rescanned.Fingerprint());
        Assert.NotEqual(data.Fingerprint(), rescanned.Fingerprint());

        var e = Assert.Throws<ViTScratchException>(() => Batches(strict, o, 0));
        Assert.Contains("--strict", e.Message);
        Assert.True(e.Message.Contains(corrupt) || e.Message.Contains(removed), e.Message);
    }

    [Fact]
    public void AFileChangedAfterTheScanIsNotSilentlyTrainedOn()
    {
        Folder(_dir.Path, 3, 4, "a", "b");
        var log = new StringWriter();
        var data = ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 8, CacheMb = 0, Log = log })!;
        string changed = Path.Combine(_dir.Path, "b", "001.png");
        File.Copy(Path.Combine(_dir.Path, "a", "000.png"), changed, overwrite: true); // still a valid PNG
        File.SetLastWriteTimeUtc(changed, DateTime.UtcNow.AddMinutes(1));
        var batches = Batches(data, DataLoaderOptions.ForEvaluation(8), 0);
        Assert.DoesNotContain(4, batches.SelectMany(b => b.Indices));
        Assert.Contains($"image '{changed}' changed after the train split was scanned", log.ToString());
    }

    [Fact]
    public void ARunStreamingEverySplitTrainsToTheSameWeightsAsACachedOne()
    {
        string d = _dir.Combine("pets");
        Folder(Path.Combine(d, "train"), 12, 5, "cat", "dog", "fox");
        Folder(Path.Combine(d, "val"), 3, 5, "cat", "dog", "fox");
        Folder(Path.Combine(d, "test"), 3, 5, "cat", "dog", "fox");
        string Run(string name, params string[] extra)
        {
            string run = _dir.Combine(name);
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = Program.Run(["train", "--dataset", "folder", "--data", d, "--image-size", "12", "--patch", "4", "--epochs", "2",
                "--batch", "8", "--device", "cpu", "--workers", "2", "--augment", "crop,flip,randaugment", "--out", run, .. extra], stdout, stderr);
            Assert.True(code == 0, stdout.ToString() + stderr);
            return stdout.ToString();
        }
        string streamedLog = Run("streamed", "--cache-mb", "0");
        Run("cached");
        foreach (var split in new[] { "train: 0 of 36", "val: 0 of 9", "test: 0 of 9" })
            Assert.Contains($"cache   {split} images held decoded", streamedLog);

        var a = SafeTensors.Read(_dir.Combine("streamed", "last.safetensors")).Tensors;
        var b = SafeTensors.Read(_dir.Combine("cached", "last.safetensors")).Tensors;
        Assert.Equal(a.Select(t => t.Name), b.Select(t => t.Name));
        for (int i = 0; i < a.Count; i++) Assert.True(a[i].Data.AsSpan().SequenceEqual(b[i].Data), $"{a[i].Name} differs");
        // The test measurement (streamed too) agrees to the last digit; only the checkpoint's path differs.
        static string Result(string path) => string.Join("\n", System.Text.Json.JsonDocument.Parse(File.ReadAllText(path)).RootElement
            .EnumerateObject().Where(p => !p.Name.Contains("heckpoint")).Select(p => p.ToString()));
        Assert.Equal(Result(_dir.Combine("cached", "result.json")), Result(_dir.Combine("streamed", "result.json")));
    }

    public void Dispose() => _dir.Dispose();
}
