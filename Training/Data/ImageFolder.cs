
namespace ViTScratch.Training.Data;

/// <summary>
/// Your own images as a dataset (`vit train --dataset folder --data DIR`), torchvision's
/// ImageFolder layout: one folder per class, named after it.
///   DIR/train/&lt;class&gt;/*   the training split        DIR/&lt;class&gt;/*  (no train/): all of it is training,
///   DIR/val/&lt;class&gt;/*     optional validation split                   and --val-split carves validation
///   DIR/test/&lt;class&gt;/*    optional test split
/// Class names are the training folders' names in ordinal order (label i = the i-th name); every
/// image is decoded (PNG, JPEG, BMP, in any mode: grey, RGB, RGBA, palette), scaled so its shorter
/// side is the image size and centre-cropped (FolderOptions.Decoder, by default ViTScratch.Imaging's ImageFiles.LoadChw), and kept in memory as uint8 CHW.
/// The per-channel mean and std are measured on the training split and travel with the dataset
/// (and into the checkpoint). An unreadable image is skipped with one warning line naming it and
/// a count at the end, or stops the load with --strict.
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
        long bytes = (long)files.Count * size;
        if (bytes > o.CacheMb * (1L << 20))
            throw new ViTScratchException($"the {split} split of '{full}' decodes to {bytes >> 20} MB at {s}x{s}x{c}, more than --cache-mb {o.CacheMb}; " +
                "raise --cache-mb (this machine's memory permitting) or lower --image-size (images are kept in memory, decoded)");

        var decode = ImageDecoders.Resolve(o.Decoder);
        // Decode in parallel; each image lands at its own index, so the result does not depend on scheduling.
        var decoded = new byte[files.Count][];
        var failed = new string?[files.Count];
        int done = 0;
        var progress = new DecodeProgress(o.Log, split, files.Count);
        Parallel.For(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            try { decoded[i] = decode(files[i].Path, c, s, o.MaxPixels); }
            catch (ViTScratchException e) { failed[i] = e.Message; }
            progress.Report(Interlocked.Increment(ref done));
        });

        var bad = Enumerable.Range(0, files.Count).Where(i => failed[i] is not null).ToList();
        if (bad.Count > 0 && o.Strict)
            throw new ViTScratchException($"{failed[bad[0]]} (--strict stops at the first unreadable image; {bad.Count} in the {split} split)");
        foreach (int i in bad) o.Log.WriteLine($"warning: skipped: {failed[i]}");
        if (bad.Count > 0) o.Log.WriteLine($"warning: {bad.Count} of {files.Count} images of the {split} split could not be read and were skipped");

        var keep = Enumerable.Range(0, files.Count).Where(i => failed[i] is null).ToList();
        if (keep.Count == 0) throw new ViTScratchException($"no image of the {split} split in '{root}' could be read");
        var pixels = new byte[(long)keep.Count * size];
        var labels = new byte[keep.Count];
        for (int k = 0; k < keep.Count; k++)
        {
            decoded[keep[k]].CopyTo(pixels, (long)k * size);
            labels[k] = files[keep[k]].Label;
        }
        var (mean, std) = o.Mean is null ? Statistics(pixels, keep.Count, c, s * s) : (o.Mean, o.Std!);
        return new ImageDataset(Name, keep.Count, c, s, s, pixels, labels, classes, mean, std) { Source = full };
    }

    /// <summary>The dataset name of an image folder (`--dataset folder`).</summary>
    public const string Name = "folder";

    /// <summary>Per-channel mean and standard deviation of the pixels, in [0, 1] units (what the loader normalises with).</summary>
    public static (float[] Mean, float[] Std) Statistics(byte[] pixels, int count, int channels, int plane)
    {
        var mean = new float[channels];
        var std = new float[channels];
        for (int ch = 0; ch < channels; ch++)
        {
            double sum = 0, sumSq = 0;
            for (int i = 0; i < count; i++)
            {
                long at = ((long)i * channels + ch) * plane;
                for (int p = 0; p < plane; p++)
                {
                    double v = pixels[at + p] / 255.0;
                    sum += v;
                    sumSq += v * v;
                }
            }
            double n = (double)count * plane, m = sum / n;
            mean[ch] = (float)m;
            // A constant channel (all one colour) would divide by zero: floor the std at one grey level.
            std[ch] = (float)Math.Max(Math.Sqrt(Math.Max(sumSq / n - m * m, 0)), 1 / 255.0);
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
    /// <summary>Most memory the decoded images of one split may take. Default 8 GiB: a third of this 24 GiB machine.</summary>
    public long CacheMb { get; init; } = 8192;
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
