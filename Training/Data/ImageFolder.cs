
namespace ViTScratch.Training.Data;

/// <summary>
/// Your own images as a dataset (`vit train --dataset folder --data DIR`), torchvision's
/// ImageFolder layout: one folder per class, named after it.
///   DIR/train/&lt;class&gt;/*   the training split        DIR/&lt;class&gt;/*  (no train/): all of it is training,
///   DIR/val/&lt;class&gt;/*     optional validation split                   and --val-split carves validation
///   DIR/test/&lt;class&gt;/*    optional test split
/// Class names are the training folders' names in ordinal order (label i = the i-th name); every
/// image is decoded (PNG, JPEG, BMP, in any mode: grey, RGB, RGBA, palette), scaled so its shorter
/// side is the image size and centre-cropped (FolderOptions.Decoder, by default ViTScratch.Imaging's ImageFiles.LoadChw), as uint8 CHW.
///
/// Loading a split scans it: every file is decoded once, in parallel, to find the unreadable ones,
/// measure the per-channel mean and std (training split; they travel with the dataset and into the
/// checkpoint) and fingerprint the split. The decoded images are kept while `--cache-mb` lasts
/// (training split first, then val, then test); a split larger than that streams the rest: the
/// loader's workers decode those images from their files again on every pass, ahead of the step
/// (<see cref="FolderImageStore"/>). The batches are the same either way. An unreadable image is
/// skipped with one warning line naming it and a count at the end, or stops the load with --strict;
/// so is a streamed file that changes or disappears during the run.
/// </summary>
public static class ImageFolder
{
    /// <summary>The file extensions read as images.</summary>
    public static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".bmp"];

    /// <summary>The class folders of the training split: DIR/train if it exists, else DIR itself.</summary>
    public static string TrainRoot(string dir) => Directory.Exists(Path.Combine(dir, "train")) ? Path.Combine(dir, "train") : dir;

    /// <summary>
    /// Loads one split: "train", "val" or "test". The training split defines the classes; val/test
    /// return null when their folder does not exist, and refuse a class the training split lacks.
    /// </summary>
    public static ImageDataset? Load(string dir, string split, FolderOptions o, IReadOnlyList<string>? trainClasses = null)
    {
        string full = Path.GetFullPath(dir);
        if (!Directory.Exists(full))
            throw new ViTScratchException($"--data '{full}' does not exist; point it at a folder of class folders (DIR/<class>/*.png) or of train/ and test/");
        string root = split == "train" ? TrainRoot(full) : Path.Combine(full, split);
        if (split != "train" && !Directory.Exists(root)) return null;

        var classDirs = Directory.GetDirectories(root).Select(Path.GetFileName).Where(n => n is not ("train" or "val" or "test"))
            .Order(StringComparer.Ordinal).ToList();
        string[] classes;
        if (trainClasses is null)
        {
            if (classDirs.Count < 2)
                throw new ViTScratchException($"'{root}' holds {classDirs.Count} class folder{(classDirs.Count == 1 ? "" : "s")}; a classifier needs at least two (DIR/<class>/*.png)");
            classes = classDirs.ToArray()!;
        }
        else
        {
            foreach (var name in classDirs)
                if (!trainClasses.Contains(name!))
                    throw new ViTScratchException($"class '{name}' is in '{root}' but not in the training split; add its training images or remove the folder");
            classes = trainClasses.ToArray();
        }

        // Every image path with its label, in a fixed order (class, then file name).
        var files = new List<(string Path, byte Label)>();
        for (int label = 0; label < classes.Length; label++)
        {
            string classDir = Path.Combine(root, classes[label]);
            if (!Directory.Exists(classDir)) continue; // a val/test split may lack a class
            var images = Directory.GetFiles(classDir).Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal).ToList();
            if (images.Count == 0)
                throw new ViTScratchException($"class folder '{classDir}' holds no .png, .jpg or .bmp image; add images or remove the folder");
            files.AddRange(images.Select(f => (f, (byte)label)));
        }
        if (classes.Length > 256)
            throw new ViTScratchException($"'{root}' has {classes.Length} classes; at most 256 are supported");

        int c = o.Channels, s = o.ImageSize, size = c * s * s;
        var store = new FolderImageStore(files.Count, size, o, split);
        var budget = o.Budget ?? new CacheBudget(o.CacheMb << 20);
        var labels = new List<byte>(files.Count);
        var sums = new long[2 * c];
        var failed = new List<string>();
        // The fingerprint is taken as the split is decoded, on the assumption that every file reads
        // (the header holds the count and the labels, which a skipped file would change); when one
        // does not, the dataset computes it again on demand.
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        ImageDataset.AppendFingerprintHeader(sha, files.Count, c, s, s, files.Select(f => f.Label).ToArray());

        var decode = ImageDecoders.Resolve(o.Decoder);
        // Decode a window of files at a time in parallel (each lands at its own index, so nothing
        // depends on scheduling), then take them in order: statistics, fingerprint, and the cache
        // while the budget lasts. Only one window is ever held beyond the cache.
        int window = DecodeWindow(size);
        var decoded = new byte[window][];
        var stamps = new FileStamp?[window];
        var problems = new string?[window];
        var progress = new DecodeProgress(o.Log, split, files.Count);
        int done = 0;
        for (int start = 0; start < files.Count; start += window)
        {
            int n = Math.Min(window, files.Count - start);
            Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
            {
                string path = files[start + i].Path;
                try
                {
                    // The stamp before the pixels: a file rewritten during its decode then shows as changed when streamed.
                    stamps[i] = FileStamp.Of(path) ?? throw new ViTScratchException($"image '{path}' does not exist");
                    decoded[i] = decode(path, c, s, o.MaxPixels);
                    problems[i] = null;
                }
                catch (ViTScratchException e) { problems[i] = e.Message; }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { problems[i] = $"image '{path}' could not be read ({e.Message})"; }
                progress.Report(Interlocked.Increment(ref done));
            });
            for (int i = 0; i < n; i++)
            {
                if (problems[i] is { } problem)
                {
                    if (o.Strict) throw new ViTScratchException($"{problem} (--strict stops at the first unreadable image)");
                    o.Log.WriteLine($"warning: skipped: {problem}");
                    failed.Add(problem);
                    continue;
                }
                AddToSums(sums, decoded[i], c, s * s);
                sha.AppendData(decoded[i]);
                store.Add(labels.Count, files[start + i].Path, stamps[i]!.Value, decoded[i], budget);
                labels.Add(files[start + i].Label);
                decoded[i] = null!;
            }
        }
        if (failed.Count > 0) o.Log.WriteLine($"warning: {failed.Count} of {files.Count} images of the {split} split could not be read and were skipped");
        if (labels.Count == 0) throw new ViTScratchException($"no image of the {split} split in '{root}' could be read");
        store.Trim(labels.Count);

        var (mean, std) = o.Mean is null ? FromSums(sums, labels.Count, c, s * s) : (o.Mean, o.Std!);
        var data = new ImageDataset(Name, store, map: null, s, labels.ToArray(), classes, mean, std,
            scanFingerprint: failed.Count == 0 ? Convert.ToHexStringLower(sha.GetHashAndReset().AsSpan(0, 16)) : null) { Source = full };
        if (store.CachedCount < store.Count)
            o.Log.WriteLine($"cache   {split}: {store.CachedCount} of {store.Count} images held decoded ({store.CachedBytes >> 20} MB of --cache-mb {o.CacheMb}); " +
                $"the other {store.Count - store.CachedCount} ({((long)(store.Count - store.CachedCount) * size) >> 20} MB) are decoded from their files by the loader's workers each pass");
        return data;
    }

    /// <summary>
    /// How many images to decode at once: a few for every core, and otherwise at most about 16 MiB
    /// of pixels (what a scan or a fingerprint holds beyond the cache).
    /// </summary>
    internal static int DecodeWindow(int imageBytes) => (int)Math.Clamp((16L << 20) / imageBytes, 4L * Environment.ProcessorCount, 1024);

    /// <summary>The dataset name of an image folder (`--dataset folder`).</summary>
    public const string Name = "folder";

    /// <summary>Per-channel mean and standard deviation of the pixels, in [0, 1] units (what the loader normalises with).</summary>
    public static (float[] Mean, float[] Std) Statistics(byte[] pixels, int count, int channels, int plane)
    {
        var sums = new long[2 * channels];
        for (int i = 0; i < count; i++) AddToSums(sums, pixels.AsSpan((int)((long)i * channels * plane), channels * plane), channels, plane);
        return FromSums(sums, count, channels, plane);
    }

    // Sums of pixel values and of their squares per channel, in integers: exact, so the statistics
    // do not depend on the order images are met in (a 1024x1024 image adds at most 2^36 per channel).
    private static void AddToSums(long[] sums, ReadOnlySpan<byte> image, int channels, int plane)
    {
        for (int ch = 0; ch < channels; ch++)
        {
            long sum = 0, sumSq = 0;
            foreach (byte v in image.Slice(ch * plane, plane)) { sum += v; sumSq += v * v; }
            sums[2 * ch] += sum;
            sums[2 * ch + 1] += sumSq;
        }
    }

    private static (float[] Mean, float[] Std) FromSums(long[] sums, int count, int channels, int plane)
    {
        var mean = new float[channels];
        var std = new float[channels];
        double n = (double)count * plane;
        for (int ch = 0; ch < channels; ch++)
        {
            double m = sums[2 * ch] / 255.0 / n, meanSq = sums[2 * ch + 1] / (255.0 * 255.0) / n;
            mean[ch] = (float)m;
            // A constant channel (all one colour) would divide by zero: floor the std at one grey level.
            std[ch] = (float)Math.Max(Math.Sqrt(Math.Max(meanSq - m * m, 0)), 1 / 255.0);
        }
        return (mean, std);
    }

    private sealed class DecodeProgress(TextWriter log, string split, int total)
    {
        private int _lastDecile;
        public void Report(int done)
        {
            if (total < 2000) return; // small folders decode in a blink
            int decile = (int)(10L * done / total);
            if (decile <= Volatile.Read(ref _lastDecile)) return;
            lock (this)
            {
                if (decile <= _lastDecile) return;
                _lastDecile = decile;
                log.WriteLine($"decode  {split}: {done}/{total} images ({decile * 10}%)");
            }
        }
    }
}

/// <summary>How an image folder is decoded: `--image-size`, `--channels`, `--cache-mb`, `--strict`, `--max-pixels`.</summary>
public sealed record FolderOptions
{
    /// <summary>Side of the square images after decoding.</summary>
    public int ImageSize { get; init; } = 32;
    /// <summary>1 (grey) or 3 (RGB).</summary>
    public int Channels { get; init; } = 3;
    /// <summary>
    /// Most memory the decoded images may take, in MiB; the images beyond it are decoded from their
    /// files on every pass by the loader's workers. Default 8 GiB: a third of this 24 GiB machine,
    /// leaving room for the model, the batches in flight and the operating system's file cache.
    /// </summary>
    public long CacheMb { get; init; } = 8192;
    /// <summary>The memory left for decoded images, shared by the splits of one run (null: CacheMb for this split alone).</summary>
    public CacheBudget? Budget { get; init; }
    /// <summary>An unreadable image is an error (else it is skipped with a warning).</summary>
    public bool Strict { get; init; }
    /// <summary>Largest image decoded (`--max-pixels`): 100 megapixels, 400 MB decoded (ViTScratch.Imaging's ImageFiles.DefaultMaxPixels).</summary>
    public long MaxPixels { get; init; } = 100_000_000;
    /// <summary>How an image file is decoded; null = ViTScratch.Imaging's SkiaSharp decoder, which must then be referenced.</summary>
    public ImageDecoder? Decoder { get; init; }
    /// <summary>Normalisation to use instead of measuring it (the training split's, for val and test).</summary>
    public IReadOnlyList<float>? Mean { get; init; }
    /// <summary>Per-channel standard deviation to use instead of measuring it.</summary>
    public IReadOnlyList<float>? Std { get; init; }
    /// <summary>Where progress and skipped-file warnings go.</summary>
    public TextWriter Log { get; init; } = TextWriter.Null;
}
