using System.Buffers.Binary;
using System.IO.Compression;
using SkiaSharp;
using ViTScratch.Training;
using ViTScratch.Training.Data;

namespace ViTScratch.Tests.Data;

/// <summary>
/// Your own images: the folder layouts, every file format and pixel mode, the shorter-side resize
/// and centre crop, class names and statistics, bad files and bad layouts, and a run end to end
/// whose eval and predict print class names.
/// </summary>
public class ImageFolderTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static void Png(string path, int w, int h, Func<int, int, SKColor> pixel, SKColorType type = SKColorType.Rgba8888)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bmp = new SKBitmap(new SKImageInfo(w, h, type, type == SKColorType.Gray8 ? SKAlphaType.Opaque : SKAlphaType.Unpremul));
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) bmp.SetPixel(x, y, pixel(x, y));
        using var data = bmp.Encode(path.EndsWith(".jpg") ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    // A 24-bit BMP, bottom-up rows padded to 4 bytes (Skia decodes BMP but does not encode it).
    private static void Bmp(string path, int w, int h, Func<int, int, SKColor> pixel)
    {
        int stride = (w * 3 + 3) & ~3;
        var b = new byte[54 + stride * h];
        b[0] = (byte)'B'; b[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(2), b.Length);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(18), w);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(22), h);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(28), 24);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = pixel(x, y);
                int at = 54 + (h - 1 - y) * stride + x * 3;
                (b[at], b[at + 1], b[at + 2]) = (c.Blue, c.Green, c.Red);
            }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, b);
    }

    // A palette PNG (colour type 3) written chunk by chunk: Skia decodes these but no longer encodes them.
    private static void PalettePng(string path, int w, int h, SKColor[] palette, Func<int, int, byte> index)
    {
        static byte[] Chunk(string type, byte[] data)
        {
            var t = System.Text.Encoding.ASCII.GetBytes(type);
            var o = new byte[12 + data.Length];
            BinaryPrimitives.WriteInt32BigEndian(o, data.Length);
            t.CopyTo(o, 4); data.CopyTo(o, 8);
            BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(8 + data.Length), Crc32([.. t, .. data]));
            return o;
        }
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8; ihdr[9] = 3;
        var raw = new MemoryStream();
        for (int y = 0; y < h; y++) { raw.WriteByte(0); for (int x = 0; x < w; x++) raw.WriteByte(index(x, y)); }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw.ToArray());
        var file = new MemoryStream();
        file.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10]);
        file.Write(Chunk("IHDR", ihdr));
        file.Write(Chunk("PLTE", palette.SelectMany(c => new[] { c.Red, c.Green, c.Blue }).ToArray()));
        file.Write(Chunk("IDAT", z.ToArray()));
        file.Write(Chunk("IEND", []));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, file.ToArray());
    }

    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte d in data) { crc ^= d; for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1; }
        return ~crc;
    }

    private static readonly SKColor Red = new(200, 30, 40), Blue = new(20, 60, 220);

    [Fact]
    public void EveryFormatAndModeDecodesWithTheShorterSideScaledAndTheCentreCropped()
    {
        string d = _dir.Path;
        // Wide and tall images whose centre square is one colour and whose sides are another: the
        // crop must keep only the centre. Formats: RGB PNG, RGBA PNG, grey PNG, JPEG, BMP, palette PNG.
        SKColor Wide(int x, int y) => x is >= 20 and < 40 ? Red : Blue;   // 60x20: centre 20x20 red
        SKColor Tall(int x, int y) => y is >= 10 and < 30 ? Red : Blue;   // 20x40: centre 20x20 red
        Png(Path.Combine(d, "train", "a", "wide.png"), 60, 20, Wide);
        Png(Path.Combine(d, "train", "a", "rgba.png"), 20, 40, (x, y) => Tall(x, y).WithAlpha(128));
        Png(Path.Combine(d, "train", "a", "grey.png"), 60, 20, (x, y) => Wide(x, y) == Red ? new SKColor(90, 90, 90) : SKColors.White, SKColorType.Gray8);
        Png(Path.Combine(d, "train", "b", "photo.jpg"), 20, 40, Tall);
        Bmp(Path.Combine(d, "train", "b", "bitmap.bmp"), 60, 20, Wide);
        PalettePng(Path.Combine(d, "train", "b", "palette.png"), 20, 40, [Blue, Red], (x, y) => (byte)(Tall(x, y) == Red ? 1 : 0));

        var data = ImageFolder.Load(d, "train", new FolderOptions { ImageSize = 8, Channels = 3 })!;
        Assert.Equal(["a", "b"], data.ClassNames);
        Assert.Equal(6, data.Count);
        Assert.Equal([0, 0, 0, 1, 1, 1], data.Labels); // classes in order, files by name within: grey, rgba, wide | bitmap, palette, photo
        for (int i = 0; i < 6; i++)
        {
            var img = data.Image(i);
            bool grey = i == 0;
            // The inner 6x6 of the 8x8 crop is far from the side colour; filtering only touches the rim.
            for (int y = 1; y < 7; y++)
                for (int x = 1; x < 7; x++)
                {
                    byte r = img[y * 8 + x], g = img[64 + y * 8 + x], b = img[128 + y * 8 + x];
                    var want = grey ? new SKColor(90, 90, 90) : Red;
                    int tolerance = i == 5 ? 12 : 3; // the JPEG (photo.jpg) is lossy
                    Assert.True(Math.Abs(r - want.Red) <= tolerance && Math.Abs(g - want.Green) <= tolerance && Math.Abs(b - want.Blue) <= tolerance,
                        $"image {i} pixel ({x},{y}) = ({r},{g},{b}), expected about ({want.Red},{want.Green},{want.Blue})");
                }
        }

        // One channel: the luma of the same pixels.
        var grey1 = ImageFolder.Load(d, "train", new FolderOptions { ImageSize = 8, Channels = 1 })!;
        Assert.Equal(Math.Round(0.299 * Red.Red + 0.587 * Red.Green + 0.114 * Red.Blue), grey1.Image(2)[4 * 8 + 4], 2);

        // Statistics are the training split's own: mean and std per channel, in [0, 1] units.
        double sum = 0, sumSq = 0;
        for (int i = 0; i < 6; i++) for (int p = 0; p < 64; p++) { double v = data.Image(i)[p] / 255.0; sum += v; sumSq += v * v; }
        double mean = sum / 384;
        Assert.Equal(mean, data.Mean[0], 5);
        Assert.Equal(Math.Sqrt(sumSq / 384 - mean * mean), data.Std[0], 5);
    }

    private void Classes(string root, int perClass, params string[] names)
    {
        for (int c = 0; c < names.Length; c++)
            for (int i = 0; i < perClass; i++)
            {
                var colour = new SKColor((byte)(60 * c + 20), (byte)(100 + 7 * i), (byte)(200 - 50 * c));
                Png(Path.Combine(root, names[c], $"{i}.png"), 12, 12, (x, y) => (x + y) % (c + 2) == 0 ? SKColors.White : colour);
            }
    }

    [Fact]
    public void BadFilesAreSkippedWithAWarningOrStopAStrictLoad()
    {
        Classes(Path.Combine(_dir.Path, "train"), 3, "cat", "dog");
        string broken = Path.Combine(_dir.Path, "train", "dog", "broken.png");
        File.WriteAllBytes(broken, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        var log = new StringWriter();
        var data = ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 8, Log = log })!;
        Assert.Equal(6, data.Count);
        Assert.Contains($"warning: skipped: ", log.ToString());
        Assert.Contains(broken, log.ToString());
        Assert.Contains("1 of 7 images of the train split could not be read", log.ToString());

        var e = Assert.Throws<ViTScratchException>(() => ImageFolder.Load(_dir.Path, "train", new FolderOptions { ImageSize = 8, Strict = true }));
        Assert.Contains(broken, e.Message);
        Assert.Contains("--strict", e.Message);
    }

    [Fact]
    public void BadLayoutsAreClearErrors()
    {
        string one = _dir.Combine("one");
        Classes(one, 2, "only");
        Assert.Contains("at least two", Assert.Throws<ViTScratchException>(() => ImageFolder.Load(one, "train", new FolderOptions())).Message);

        string empty = _dir.Combine("empty");
        Classes(empty, 2, "a", "b");
        Directory.CreateDirectory(Path.Combine(empty, "c"));
        Assert.Contains("holds no .png", Assert.Throws<ViTScratchException>(() => ImageFolder.Load(empty, "train", new FolderOptions())).Message);

        string stray = _dir.Combine("stray");
        Classes(Path.Combine(stray, "train"), 2, "a", "b");
        Classes(Path.Combine(stray, "test"), 2, "a", "zebra");
        var train = ImageFolder.Load(stray, "train", new FolderOptions())!;
        var e = Assert.Throws<ViTScratchException>(() => ImageFolder.Load(stray, "test", new FolderOptions(), train.ClassNames));
        Assert.Contains("class 'zebra'", e.Message);
        Assert.Contains("not in the training split", e.Message);
    }

    [Fact]
    public void AFolderTrainsAndItsCheckpointSpeaksInClassNames()
    {
        string d = _dir.Combine("pets");
        Classes(Path.Combine(d, "train"), 12, "cat", "dog", "fox");
        Classes(Path.Combine(d, "val"), 2, "cat", "dog", "fox");
        Classes(Path.Combine(d, "test"), 3, "cat", "dog", "fox");
        string run = _dir.Combine("run");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["train", "--dataset", "folder", "--data", d, "--image-size", "12", "--patch", "4", "--epochs", "2",
            "--batch", "8", "--device", "cpu", "--workers", "1", "--out", run], stdout, stderr);
        Assert.True(code == 0, stdout.ToString() + stderr);
        Assert.Contains("folder: 36 train / 6 val / 9 test images, 12x12x3, 3 classes", stdout.ToString()); // val/ used as it is, not carved

        var eval = new StringWriter();
        Assert.Equal(0, Program.Run(["eval", "--checkpoint", Path.Combine(run, "best.safetensors"), "--device", "cpu"], eval, new StringWriter()));
        Assert.Contains("folder test set (9 images)", eval.ToString());
        foreach (var name in new[] { "cat", "dog", "fox" }) Assert.Matches($@"\n  {name}\s+\d+\.\d\d%  of 3", eval.ToString());

        var predict = new StringWriter();
        Assert.Equal(0, Program.Run(["predict", "--checkpoint", Path.Combine(run, "best.safetensors"), Path.Combine(d, "test", "fox", "1.png"),
            "--device", "cpu"], predict, new StringWriter()));
        Assert.Equal(3, System.Text.RegularExpressions.Regex.Matches(predict.ToString(), @"%  (cat|dog|fox)\b").Count);
    }

    [Fact]
    public void ClassFoldersAloneAreTheTrainingSplitAndValidationIsCarved()
    {
        string d = _dir.Combine("flat");
        Classes(d, 10, "x", "y");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["train", "--dataset", "folder", "--data", d, "--image-size", "8", "--patch", "4", "--epochs", "1",
            "--batch", "4", "--device", "cpu", "--workers", "1", "--val-split", "0.2", "--out", _dir.Combine("run")], stdout, stderr);
        Assert.True(code == 0, stdout.ToString() + stderr);
        Assert.Contains("folder: 16 train / 4 val / no test images", stdout.ToString());
        Assert.Contains("no test split", stdout.ToString());
        Assert.False(File.Exists(_dir.Combine("run", "result.json")));
    }

    public void Dispose() => _dir.Dispose();
}
