using System.Diagnostics;
using System.Globalization;
using SkiaSharp;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Training.Data;
using ViTScratch.Training.Optim;

namespace ViTScratch.Benchmarks;

/// <summary>
/// Does streaming an image folder keep up with training? On one folder, measured in one process:
///   scan     the up-front pass that decodes every image once (statistics, bad files, fingerprint);
///   loader   images/s the DataLoader delivers with crop+flip when its consumer only takes batches,
///            with every image cached and with none cached (all decoded from their files each pass);
///   step     images/s of the CPU training step alone (forward, backward, AdamW) on one batch;
///   together the training step fed by the loader, cached and streamed: images/s and the share of
///            the wall time spent waiting for a batch after the first (0% = decoding never stalled
///            the step), and the wait for the first batch (nothing to overlap with yet).
/// Each phase is timed over the same number of batches; "together" rounds alternate cached and
/// streamed so a shared host's drift hits both.
///   dotnet run -c Release --project Benchmarks -- --folder-stream DIR [--make 1000] [--source-size 320]
///       [--image-size 32] [--model vit-tiny] [--batch 128] [--workers 2] [--steps 20] [--rounds 3] [--device cpu|cuda]
/// --make N first writes N JPEG photos-like images (source-size x 3/4 of it) per class of three
/// classes into DIR/train when DIR does not exist yet.
/// </summary>
public static class FolderStreaming
{
    public const string Flag = "--folder-stream";

    public static void Run(string[] args)
    {
        if (args.Length < 2 || args[1].StartsWith("--", StringComparison.Ordinal))
            throw new ArgumentException("usage: --folder-stream DIR [--make N] [--image-size 32] [--model vit-tiny] [--batch 128] [--workers 2] [--steps 20] [--rounds 3]");
        string dir = args[1];
        int Int(string name, int fallback) => int.Parse(Option(args, name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        int make = Int("--make", 0), sourceSize = Int("--source-size", 320), size = Int("--image-size", 32), batch = Int("--batch", 128);
        int workers = Int("--workers", 2), steps = Int("--steps", 20), rounds = Int("--rounds", 3);
        string preset = Option(args, "--model", "vit-tiny"), deviceName = Option(args, "--device", "cpu");
        if (make > 0 && !Directory.Exists(dir)) MakeFolder(dir, make, sourceSize);

        Console.WriteLine($"host    {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]} at the start " +
            "(a load above the core count means the timings below were taken on a busy host)");
        var clock = Stopwatch.StartNew();
        var streamed = ImageFolder.Load(dir, "train", new FolderOptions { ImageSize = size, CacheMb = 0 })!;
        double scan = clock.Elapsed.TotalSeconds;
        var cached = ImageFolder.Load(dir, "train", new FolderOptions { ImageSize = size })!;
        Console.WriteLine($"scan    {streamed.Count} images to {size}x{size}x3 in {scan:F1} s: {streamed.Count / scan:F0} img/s decoded on all cores " +
            $"(once per run); cached copy holds {cached.CachedCount}, streamed copy {streamed.CachedCount}");
        steps = Math.Min(steps, streamed.Count / batch);
        if (steps < 2) throw new ArgumentException($"the folder holds {streamed.Count} images: too few for 2 batches of {batch}");

        var info = DatasetInfo.Of(cached);
        DataLoader Loader(ImageDataset d)
        {
            var o = DataLoaderOptions.ForTraining(info, batch, seed: 1);
            (o.CropPadding, o.HorizontalFlip, o.Workers, o.DropLast) = (4 * size / 32, true, workers, true);
            return new DataLoader(d, o);
        }
        using var cachedLoader = Loader(cached);
        using var streamedLoader = Loader(streamed);
        int epoch = 0;

        // The loader alone: how fast batches come when nothing else wants the cores.
        var alone = new Dictionary<string, List<double>> { ["cached"] = [], ["streamed"] = [] };
        for (int r = 0; r < rounds; r++)
            foreach (var (name, loader) in new[] { ("cached", cachedLoader), ("streamed", streamedLoader) })
            {
                var sw = Stopwatch.StartNew();
                int n = 0, taken = 0;
                foreach (var b in loader.GetEpoch(epoch++))
                    using (b) { n += b.Count; if (++taken == steps) break; }
                alone[name].Add(n / sw.Elapsed.TotalSeconds);
            }
        Console.WriteLine($"loader  {workers} workers, crop+flip, batch {batch}: cached {Median(alone["cached"]):F0} img/s, " +
            $"streamed {Median(alone["streamed"]):F0} img/s (medians of {rounds} rounds of {steps} batches)");

        // The step alone, then fed by each loader.
        using var device = Device.Create(deviceName);
        var vit = new ViT(ViTPresets.Create(preset, 3, size, size, cached.ClassCount), device, seed: 0);
        var adamw = new AdamW(OptimParam.From(vit), 0.05f, maxGradNorm: 1f);
        void Step(DataBatch b)
        {
            using var scope = new TensorScope();
            var x = Tensor.Input(device, b.ImagesSpan, b.Count, 3, size, size);
            var loss = Ops.CrossEntropy(vit.Forward(x), b.LabelsASpan, 0.1f);
            loss.Backward();
            adamw.Step(1e-4f);
            adamw.ZeroGrad();
            loss.Item();
        }
        DataBatch one = cachedLoader.GetEpoch(epoch++).First();
        for (int i = 0; i < 2; i++) Step(one);
        var stepAlone = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) Step(one);
            stepAlone.Add(steps * batch / sw.Elapsed.TotalSeconds);
        }
        one.Dispose();
        Console.WriteLine($"step    {preset} training step alone on {device.Name}: {Median(stepAlone):F0} img/s (median of {rounds} rounds of {steps} steps)");

        var fed = new Dictionary<string, List<(double Rate, double Waiting, double First)>> { ["cached"] = [], ["streamed"] = [] };
        for (int r = 0; r < rounds; r++)
            foreach (var (name, loader) in new[] { ("cached", cachedLoader), ("streamed", streamedLoader) })
            {
                var sw = Stopwatch.StartNew();
                var wait = new Stopwatch();
                double first = 0;
                int n = 0, taken = 0;
                using (var e = loader.GetEpoch(epoch++).GetEnumerator())
                {
                    while (true)
                    {
                        wait.Start();
                        bool more = e.MoveNext();
                        wait.Stop();
                        if (taken == 0) { first = wait.Elapsed.TotalSeconds; wait.Reset(); }
                        if (!more) break;
                        using (var b = e.Current) { Step(b); n += b.Count; }
                        if (++taken == steps) break;
                    }
                }
                fed[name].Add((n / sw.Elapsed.TotalSeconds, wait.Elapsed.TotalSeconds / (sw.Elapsed.TotalSeconds - first), first));
            }
        foreach (var name in new[] { "cached", "streamed" })
            Console.WriteLine($"fed     {name,-8} step fed by the loader: {Median(fed[name].Select(f => f.Rate).ToList()):F0} img/s, " +
                $"waiting for batches after the first {100 * Median(fed[name].Select(f => f.Waiting).ToList()):F1}% of the time, " +
                $"for the first {Median(fed[name].Select(f => f.First).ToList()):F2} s");
        Console.WriteLine($"ratio   streamed loader alone / step alone = {Median(alone["streamed"]) / Median(stepAlone):F1}x " +
            "(above 1: the workers decode faster than the step consumes)");
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    private static string Option(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    // Photo-like JPEGs (a gradient, a disc or a band, and noise) in three classes, so decoding costs
    // what a camera picture of this size costs rather than what a flat synthetic PNG does.
    private static void MakeFolder(string dir, int perClass, int side)
    {
        var rng = new Random(0);
        int w = side, h = side * 3 / 4;
        foreach (var name in new[] { "discs", "bands", "plain" })
        {
            string folder = Path.Combine(dir, "train", name);
            Directory.CreateDirectory(folder);
            for (int i = 0; i < perClass; i++)
            {
                using var bmp = new SKBitmap(w, h);
                var pixels = new SKColor[w * h];
                byte r0 = (byte)rng.Next(256), g0 = (byte)rng.Next(256), b0 = (byte)rng.Next(256);
                double cx = rng.NextDouble() * w, cy = rng.NextDouble() * h, rad = (0.1 + 0.2 * rng.NextDouble()) * h;
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        bool mark = name switch { "discs" => (x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad, "bands" => Math.Abs(y - cy) < rad / 3, _ => false };
                        int noise = rng.Next(-24, 25);
                        pixels[y * w + x] = mark
                            ? new SKColor((byte)Math.Clamp(255 - r0 + noise, 0, 255), (byte)Math.Clamp(255 - g0 + noise, 0, 255), (byte)Math.Clamp(255 - b0 + noise, 0, 255))
                            : new SKColor((byte)Math.Clamp(r0 * x / w + noise, 0, 255), (byte)Math.Clamp(g0 * y / h + noise, 0, 255), (byte)Math.Clamp(b0 + noise, 0, 255));
                    }
                bmp.Pixels = pixels;
                using var data = bmp.Encode(SKEncodedImageFormat.Jpeg, 90);
                File.WriteAllBytes(Path.Combine(folder, $"{i:D5}.jpg"), data.ToArray());
            }
        }
    }
}
