using ViTScratch.Tests.Model;
using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

/// <summary>
/// The IDX and CIFAR readers check what a file claims against what it holds before allocating:
/// a header that claims billions of images costs a few bytes, not gigabytes.
/// </summary>
public class FormatBoundsTests
{
    private const long SmallAllocation = 1 << 20;

    private static ViTScratchException RejectedCheaply(Action read, long bound = SmallAllocation)
    {
        ViTScratchException? e = null;
        long allocated = CheckpointFixture.AllocatedBy(() => e = Assert.Throws<ViTScratchException>(read));
        Assert.True(allocated < bound, $"the failed read allocated {allocated:N0} bytes: '{e!.Message}'");
        Assert.DoesNotContain('\n', e!.Message);
        return e;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ImageHeaderClaimingBillionsFailsBeforeAllocating(bool onDisk)
    {
        // 2·10⁹ images of 1×1: under 2^31 bytes, so only the file length can tell.
        var bytes = DataTestUtil.IdxImages(2_000_000_000, 1, 1, new byte[10]);
        using var dir = new TempDir();
        File.WriteAllBytes(dir.Combine("images"), bytes);
        var e = RejectedCheaply(() =>
        {
            if (onDisk) IdxFormat.ReadImages(dir.Combine("images"));
            else IdxFormat.ReadImages(new MemoryStream(bytes), "images");
        });
        Assert.Contains("truncated", e.Message);
        Assert.Contains("2000000000 images", e.Message);
    }

    [Fact]
    public void LabelHeaderClaimingBillionsFailsBeforeAllocating()
    {
        var bytes = DataTestUtil.IdxLabels(new byte[5]);
        bytes[4] = 0x7F; // count 0x7F000005
        var e = RejectedCheaply(() => IdxFormat.ReadLabels(new MemoryStream(bytes), "labels"));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void BytesAfterTheDeclaredImagesAreAnError()
    {
        var bytes = DataTestUtil.IdxImages(2, 3, 3, new byte[19]);
        var e = Assert.Throws<ViTScratchException>(() => IdxFormat.ReadImages(new MemoryStream(bytes), "images"));
        Assert.Contains("1 bytes after the 2 images", e.Message);
    }

    [Fact]
    public void GzipClaimingMoreThanDeflateCanHoldFailsBeforeAllocating()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.Combine("images.gz"), DataTestUtil.Gzip(DataTestUtil.IdxImages(60_000_000, 28, 1, new byte[28])));
        var e = RejectedCheaply(() => IdxFormat.ReadImages(dir.Combine("images.gz")));
        Assert.Contains("compressed bytes", e.Message);
    }

    [Fact]
    public void GzipBodyIsAllocatedAsItDecompresses()
    {
        // 1.5 MB of random pixels compress to about 1.5 MB, which deflate's ratio would allow to hold
        // 10⁹ bytes: the header's claim passes the ratio test, and only the data can refute it.
        var pixels = new byte[1_500_000];
        new Random(3).NextBytes(pixels);
        var gz = DataTestUtil.Gzip(DataTestUtil.IdxImages(1_000_000_000, 1, 1, pixels));
        using var dir = new TempDir();
        File.WriteAllBytes(dir.Combine("images.gz"), gz);
        var e = RejectedCheaply(() => IdxFormat.ReadImages(dir.Combine("images.gz")), bound: 16 << 20);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void GzipWithMoreDataThanDeclaredIsAnError()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.Combine("labels.gz"), DataTestUtil.Gzip([.. DataTestUtil.IdxLabels([1, 2, 3]), 4]));
        var e = Assert.Throws<ViTScratchException>(() => IdxFormat.ReadLabels(dir.Combine("labels.gz")));
        Assert.Contains("more data after the 3 labels", e.Message);
    }

    [Fact]
    public void GzipLargerThanTheFirstChunkReadsExactly()
    {
        var pixels = new byte[3 * 1024 * 1024 + 17];
        new Random(4).NextBytes(pixels);
        using var dir = new TempDir();
        File.WriteAllBytes(dir.Combine("images.gz"), DataTestUtil.Gzip(DataTestUtil.IdxImages(pixels.Length / 7, 7, 1, pixels[..(pixels.Length / 7 * 7)])));
        var (read, count, rows, cols) = IdxFormat.ReadImages(dir.Combine("images.gz"));
        Assert.Equal((pixels.Length / 7, 7, 1), (count, rows, cols));
        Assert.Equal(pixels[..(pixels.Length / 7 * 7)], read);
    }

    [Fact]
    public void CifarRecordsAreReadWithoutASecondCopyOfTheFile()
    {
        const int Records = 300;
        using var dir = new TempDir();
        var rng = new Random(5);
        var data = DataTestUtil.CifarRecords(rng, Enumerable.Range(0, Records).Select(i => new[] { (byte)(i % 10) }).ToArray(), out var pixels);
        File.WriteAllBytes(dir.Combine("b.bin"), data);
        (byte[] Pixels, byte[] Labels) result = default;
        long allocated = CheckpointFixture.AllocatedBy(() => result = CifarFormat.ReadFiles([dir.Combine("b.bin")], CifarFormat.Cifar10));
        Assert.Equal(pixels, result.Pixels);
        // The result itself is 1.0x the file; reading the whole file first would make it 2x.
        Assert.True(allocated < 1.25 * data.Length, $"reading {data.Length:N0} bytes allocated {allocated:N0}");
    }

    [Fact]
    public void CifarClassNamesThatAreNotAListAreAnError()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.Combine("batches.meta.txt"), new byte[2 << 20]);
        Assert.Contains("not a list of class names", Assert.Throws<ViTScratchException>(() => CifarFormat.ReadClassNames(dir.Combine("batches.meta.txt"))).Message);
        Directory.CreateDirectory(dir.Combine("names-dir"));
        Assert.Contains("names-dir", Assert.Throws<ViTScratchException>(() => CifarFormat.ReadClassNames(dir.Combine("names-dir"))).Message);
    }
}
