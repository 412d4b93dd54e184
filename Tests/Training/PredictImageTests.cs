using ViTScratch.Imaging;
using System.Buffers.Binary;
using SkiaSharp;
using ViTScratch.Model;
using ViTScratch.Tests.Data;
using ViTScratch.Tests.Model;
using ViTScratch.Training;
using ViTScratch.Training.Commands;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// `vit predict IMAGE`: the header's size is checked against a pixel limit before decoding, and a
/// truncated or corrupt file is an error, not an image with blank rows.
/// </summary>
public class PredictImageTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static byte[] Encode(int width, int height, SKEncodedImageFormat format, int seed)
    {
        var rng = new Random(seed);
        using var bmp = new SKBitmap(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bmp.SetPixel(x, y, new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
        using var data = bmp.Encode(format, 90);
        return data.ToArray();
    }

    private string Write(string name, byte[] bytes)
    {
        string path = _dir.Combine(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A PNG whose IHDR chunk claims <paramref name="width"/> × <paramref name="height"/> (CRC fixed up) over a tiny image's data.</summary>
    private static byte[] PngClaiming(int width, int height)
    {
        var png = Encode(2, 2, SKEncodedImageFormat.Png, 1);
        // 8-byte signature, then IHDR: length (4), "IHDR" (4), width (4), height (4), 5 more bytes, CRC (4).
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
        return png;
    }

    /// <summary>The CRC-32 of PNG chunks (ISO 3309, reflected polynomial 0xEDB88320).</summary>
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    [Theory]
    [InlineData(SKEncodedImageFormat.Png)]
    [InlineData(SKEncodedImageFormat.Jpeg)]
    public void CompleteImageDecodes(SKEncodedImageFormat format)
    {
        var chw = ImageFiles.LoadChw(Write("ok", Encode(40, 30, format, 2)), 3, 8);
        Assert.Equal(3 * 8 * 8, chw.Length);
        Assert.Contains(chw, v => v != 0);
    }

    [Fact]
    public void HugeHeaderIsRefusedBeforeDecoding()
    {
        string path = Write("huge.png", PngClaiming(30000, 30000));
        ViTScratchException? e = null;
        long allocated = CheckpointFixture.AllocatedBy(() => e = Assert.Throws<ViTScratchException>(() => ImageFiles.LoadChw(path, 3, 8)));
        Assert.Contains("30000x30000 = 900000000 pixels", e!.Message);
        Assert.Contains("--max-pixels", e.Message);
        Assert.Contains(path, e.Message);
        Assert.True(allocated < 1 << 20, $"{allocated:N0} bytes");
    }

    [Fact]
    public void PixelLimitCanBeRaisedOrLowered()
    {
        string path = Write("small.png", Encode(40, 30, SKEncodedImageFormat.Png, 3));
        Assert.Contains("40x30 = 1200 pixels, more than the limit of 1199", Assert.Throws<ViTScratchException>(() => ImageFiles.LoadChw(path, 1, 8, maxPixels: 1199)).Message);
        Assert.Equal(64, ImageFiles.LoadChw(path, 1, 8, maxPixels: 1200).Length);
    }

    [Theory]
    [InlineData(SKEncodedImageFormat.Png)]
    [InlineData(SKEncodedImageFormat.Jpeg)]
    public void TruncatedImageIsAnError(SKEncodedImageFormat format)
    {
        var bytes = Encode(64, 64, format, 4);
        string path = Write("cut", bytes[..(bytes.Length * 6 / 10)]);
        var e = Assert.Throws<ViTScratchException>(() => ImageFiles.LoadChw(path, 3, 8));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void NotAnImageIsAnError()
    {
        string path = Write("noise.png", Enumerable.Range(0, 500).Select(i => (byte)(i * 31 + 7)).ToArray());
        Assert.Contains("not an image", Assert.Throws<ViTScratchException>(() => ImageFiles.LoadChw(path, 3, 8)).Message);
    }

    [Fact]
    public void MaxPixelsFlagReachesTheDecoder()
    {
        // A Fashion-MNIST-shaped model saved as a training checkpoint: predict needs no dataset for an image file.
        var config = new ViTConfig(ImageSize: 28, PatchSize: 7, NumClasses: 10, Dim: 8, Depth: 1, Heads: 2, MlpDim: 16, Channels: 1, DimHead: 4);
        using var device = ViTScratch.Engine.Device.Create("cpu");
        var model = new ViT(config, device);
        string checkpoint = _dir.Combine("model.safetensors");
        TrainingCheckpoint.Save(checkpoint, model, CheckpointFixture.Optimizer(model), new TrainOptions(), TrainingPosition.Start);
        string image = Write("digit.png", Encode(28, 28, SKEncodedImageFormat.Png, 5));

        int Predict(out string stdout, out string stderr, params string[] extra)
        {
            var o = new StringWriter();
            var e = new StringWriter();
            int code = Program.Run(["predict", "--checkpoint", checkpoint, image, "--device", "cpu", .. extra], o, e);
            (stdout, stderr) = (o.ToString(), e.ToString());
            return code;
        }

        Assert.Equal(0, Predict(out var stdout, out var stderr));
        Assert.Contains("digit.png:", stdout);
        Assert.Equal(1, Predict(out _, out stderr, "--max-pixels", "783"));
        Assert.Contains("28x28 = 784 pixels, more than the limit of 783", stderr);
        Assert.Equal(1, Predict(out _, out stderr, "--max-pixels", "lots"));
        Assert.Contains("--max-pixels expects a whole number", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }

    public void Dispose() => _dir.Dispose();
}
