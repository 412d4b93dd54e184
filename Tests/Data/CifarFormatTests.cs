using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

public class CifarFormatTests
{
    [Fact]
    public void Cifar10_RecordsAcrossFiles_AreConcatenatedInOrder()
    {
        using var dir = new TempDir();
        var rng = new Random(10);
        int[] counts = [1, 7, 3];
        var allPixels = new List<byte>();
        var allLabels = new List<byte>();
        var paths = new List<string>();
        for (int f = 0; f < counts.Length; f++)
        {
            var labels = Enumerable.Range(0, counts[f]).Select(_ => new[] { (byte)rng.Next(10) }).ToArray();
            var data = DataTestUtil.CifarRecords(rng, labels, out var pixels);
            paths.Add(dir.Combine($"b{f}.bin"));
            File.WriteAllBytes(paths[^1], data);
            allPixels.AddRange(pixels);
            allLabels.AddRange(labels.Select(l => l[0]));
        }
        var (p, l) = CifarFormat.ReadFiles(paths, CifarFormat.Cifar10);
        Assert.Equal(allPixels.ToArray(), p);
        Assert.Equal(allLabels.ToArray(), l);
    }

    [Fact]
    public void Cifar100_KeepsFineLabel_AndPixelPlanesStayChw()
    {
        using var dir = new TempDir();
        var rng = new Random(100);
        var labels = Enumerable.Range(0, 65).Select(_ => new[] { (byte)rng.Next(20), (byte)rng.Next(100) }).ToArray();
        var data = DataTestUtil.CifarRecords(rng, labels, out var pixels);
        File.WriteAllBytes(dir.Combine("train.bin"), data);
        var (p, l) = CifarFormat.ReadFiles([dir.Combine("train.bin")], CifarFormat.Cifar100Fine);
        Assert.Equal(labels.Select(x => x[1]).ToArray(), l);
        Assert.Equal(pixels, p);
        // Record 3, green plane (offset 1024), row 5, column 7 sits right after the 2 label bytes.
        Assert.Equal(data[3 * 3074 + 2 + 1024 + 5 * 32 + 7], p[3 * 3072 + 1024 + 5 * 32 + 7]);
    }

    [Fact]
    public void TruncatedFile_SaysTruncated()
    {
        using var dir = new TempDir();
        var data = DataTestUtil.CifarRecords(new Random(1), [[1], [2]], out _);
        File.WriteAllBytes(dir.Combine("b.bin"), data.AsSpan(0, data.Length - 1).ToArray());
        var e = Assert.Throws<ViTScratchException>(() => CifarFormat.ReadFiles([dir.Combine("b.bin")], CifarFormat.Cifar10));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("3073", e.Message);
    }

    [Fact]
    public void LabelOutOfRange_IsReported()
    {
        using var dir = new TempDir();
        var data = DataTestUtil.CifarRecords(new Random(2), [[3], [10], [4]], out _);
        File.WriteAllBytes(dir.Combine("b.bin"), data);
        var e = Assert.Throws<ViTScratchException>(() => CifarFormat.ReadFiles([dir.Combine("b.bin")], CifarFormat.Cifar10));
        Assert.Contains("record 1", e.Message);
        Assert.Contains("label 10", e.Message);
    }

    [Fact]
    public void MissingFile_IsReported()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ViTScratchException>(() => CifarFormat.ReadFiles([dir.Combine("data_batch_1.bin")], CifarFormat.Cifar10));
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void DatasetInfo_ClassNameCounts()
    {
        Assert.Equal(10, DatasetInfo.Cifar10.ClassCount);
        Assert.Equal(100, DatasetInfo.Cifar100.ClassCount);
        Assert.Equal(100, DatasetInfo.Cifar100.ClassNames.Distinct().Count());
        Assert.Equal(10, DatasetInfo.FashionMnist.ClassCount);
        Assert.Equal(10, DatasetInfo.Mnist.ClassCount);
    }
}
