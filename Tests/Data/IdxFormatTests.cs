using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

public class IdxFormatTests
{
    [Theory]
    [InlineData(1, 28, 28, false)]
    [InlineData(7, 5, 3, true)]
    [InlineData(65, 9, 11, false)]
    [InlineData(129, 28, 28, true)]
    public void ReadsImagesAndLabels_PlainAndGzip(int count, int rows, int cols, bool gzip)
    {
        using var dir = new TempDir();
        var rng = new Random(count * 31 + rows);
        var pixels = new byte[count * rows * cols];
        rng.NextBytes(pixels);
        var labels = Enumerable.Range(0, count).Select(_ => (byte)rng.Next(10)).ToArray();
        byte[] img = DataTestUtil.IdxImages(count, rows, cols, pixels), lab = DataTestUtil.IdxLabels(labels);
        // Name without ".gz" even when gzip'd: detection is by content.
        File.WriteAllBytes(dir.Combine("images"), gzip ? DataTestUtil.Gzip(img) : img);
        File.WriteAllBytes(dir.Combine("labels"), gzip ? DataTestUtil.Gzip(lab) : lab);

        var (readPixels, n, r, c) = IdxFormat.ReadImages(dir.Combine("images"));
        Assert.Equal((count, rows, cols), (n, r, c));
        Assert.Equal(pixels, readPixels);
        Assert.Equal(labels, IdxFormat.ReadLabels(dir.Combine("labels")));
    }

    [Fact]
    public void SwappedFiles_ReportWrongMagic()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.Combine("labels"), DataTestUtil.IdxLabels([1, 2, 3]));
        var e = Assert.Throws<ViTScratchException>(() => IdxFormat.ReadImages(dir.Combine("labels")));
        Assert.Contains("magic", e.Message);
        Assert.Contains("swapped", e.Message);
    }

    [Fact]
    public void GarbageMagic_ReportsCorruptFile()
    {
        using var dir = new TempDir();
        var bytes = DataTestUtil.IdxImages(2, 3, 3, new byte[18]);
        bytes[2] = 0x07; // 0x00000703: not an IDX ubyte file
        File.WriteAllBytes(dir.Combine("x"), bytes);
        var e = Assert.Throws<ViTScratchException>(() => IdxFormat.ReadImages(dir.Combine("x")));
        Assert.Contains("0x00000703", e.Message);
        Assert.Contains("download it again", e.Message);
    }

    [Theory]
    [InlineData(false, 16 + 7 * 25 - 1)] // body one byte short
    [InlineData(false, 10)]               // header cut
    [InlineData(true, 16 + 3 * 25)]       // gzip'd, body short
    public void TruncatedImageFile_SaysTruncated(bool gzip, int keep)
    {
        using var dir = new TempDir();
        var pixels = new byte[7 * 25];
        new Random(5).NextBytes(pixels);
        var full = DataTestUtil.IdxImages(7, 5, 5, pixels);
        var cut = full.AsSpan(0, keep).ToArray();
        File.WriteAllBytes(dir.Combine("x"), gzip ? DataTestUtil.Gzip(cut) : cut);
        var e = Assert.Throws<ViTScratchException>(() => IdxFormat.ReadImages(dir.Combine("x")));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void GzipCutInTheMiddleOfTheCompressedStream_IsAUserError()
    {
        using var dir = new TempDir();
        var pixels = new byte[129 * 28 * 28];
        new Random(9).NextBytes(pixels);
        var gz = DataTestUtil.Gzip(DataTestUtil.IdxImages(129, 28, 28, pixels));
        File.WriteAllBytes(dir.Combine("x.gz"), gz.AsSpan(0, gz.Length / 2).ToArray());
        var e = Assert.Throws<ViTScratchException>(() => IdxFormat.ReadImages(dir.Combine("x.gz")));
        Assert.Matches("truncated|incomplete", e.Message);
    }

    [Fact]
    public void MissingFile_IsAUserError()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ViTScratchException>(() => IdxFormat.ReadLabels(dir.Combine("nope")));
        Assert.Contains("does not exist", e.Message);
    }
}
