// A pre-resized copy of an image folder for `vit train --dataset folder`. Streaming a folder that
// does not fit --cache-mb decodes every image again on every pass; a 320x240 JPEG costs 150-250
// times what a cached image does (docs/performance.md, "Image-folder streaming"). This writes each
// image once, scaled and centre-cropped exactly as training decodes it (ImageFiles.LoadChw:
// shorter side to SIZE, trilinear, centre square), as a lossless SIZE x SIZE PNG at the same
// relative path, so the streamed decode afterwards is a small PNG with nothing left to scale.
// Use SIZE = the --image-size you train at (or larger, to keep the choice of a larger one later).
// Unreadable images are left out with one warning line each and a count at the end.
// Usage: dotnet run -c Release --project tools/ResizeImages -- SRC DST --size 32 [--channels 3] [--workers N]
using System.Collections.Concurrent;
using SkiaSharp;
using ViTScratch;
using ViTScratch.Imaging;

string[] extensions = [".png", ".jpg", ".jpeg", ".bmp"]; // what an image folder reads (ImageFolder.Extensions)
try
{
    if (args.Length < 2 || args[0].StartsWith("--") || args[1].StartsWith("--"))
        throw new ViTScratchException("usage: ResizeImages SRC DST --size N [--channels 1|3] [--workers N]");
    string src = Path.GetFullPath(args[0]), dst = Path.GetFullPath(args[1]);
    int size = Option("--size", 0), channels = Option("--channels", 3), workers = Option("--workers", Environment.ProcessorCount);
    if (size < 1) throw new ViTScratchException("--size N is required: the shorter side to scale to (the --image-size you will train at)");
    if (channels is not (1 or 3)) throw new ViTScratchException($"--channels {channels}: use 1 (grey) or 3 (RGB)");
    if (workers < 1) throw new ViTScratchException($"--workers {workers}: use 1 or more");
    if (!Directory.Exists(src)) throw new ViTScratchException($"source folder '{src}' does not exist");
    if (Directory.Exists(dst) && Directory.EnumerateFileSystemEntries(dst).Any())
        throw new ViTScratchException($"destination '{dst}' is not empty; name a new folder");
    if (dst.StartsWith(src + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        throw new ViTScratchException($"destination '{dst}' is inside the source folder; name a folder outside it");

    var files = Directory.EnumerateFiles(src, "*", SearchOption.AllDirectories)
        .Where(f => extensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToList();
    if (files.Count == 0) throw new ViTScratchException($"'{src}' holds no .png, .jpg, .jpeg or .bmp image");
    var targets = files.Select(f => Path.Combine(dst, Path.ChangeExtension(Path.GetRelativePath(src, f), ".png"))).ToList();
    var clash = targets.GroupBy(t => t).FirstOrDefault(g => g.Count() > 1);
    if (clash is not null)
        throw new ViTScratchException($"two images would both become '{clash.Key}' (same name, different extensions); rename one of them");

    var skipped = new ConcurrentBag<string>();
    var clock = System.Diagnostics.Stopwatch.StartNew();
    Parallel.For(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = workers }, i =>
    {
        byte[] chw;
        try { chw = ImageFiles.LoadChw(files[i], channels, size); }
        catch (ViTScratchException e)
        {
            Console.Error.WriteLine($"warning: skipped: {e.Message}");
            skipped.Add(files[i]);
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(targets[i])!);
        File.WriteAllBytes(targets[i], Png(chw, channels, size));
    });
    int written = files.Count - skipped.Count;
    Console.WriteLine($"wrote {written} images of {size}x{size} ({(channels == 1 ? "grey" : "RGB")} PNG) to {dst} in {clock.Elapsed.TotalSeconds:F1} s" +
        (skipped.IsEmpty ? "" : $"; {skipped.Count} unreadable images skipped (warnings above)"));
    return 0;
}
catch (ViTScratchException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

int Option(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    if (i < 0) return fallback;
    if (i + 1 >= args.Length || !int.TryParse(args[i + 1], out int value))
        throw new ViTScratchException($"{name} needs a whole number, e.g. {name} {fallback}");
    return value;
}

// CHW bytes back to an image: grey as Gray8, RGB as opaque RGBA; PNG keeps the pixels exactly.
static byte[] Png(byte[] chw, int channels, int size)
{
    int plane = size * size;
    var info = new SKImageInfo(size, size, channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
    using var bitmap = new SKBitmap(info);
    var pixels = bitmap.GetPixelSpan();
    for (int p = 0; p < plane; p++)
    {
        if (channels == 1) { pixels[p] = chw[p]; continue; }
        pixels[4 * p] = chw[p];
        pixels[4 * p + 1] = chw[plane + p];
        pixels[4 * p + 2] = chw[2 * plane + p];
        pixels[4 * p + 3] = 255;
    }
    using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
    return data.ToArray();
}
