using System.Text;
using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

/// <summary>
/// The download path end to end against a loopback HTTP server serving small archives with the
/// real CIFAR binary layout. Only 127.0.0.1 is contacted.
/// </summary>
public class DownloadTests
{
    private sealed class Cifar10Archive
    {
        public byte[] Bytes = [];
        public List<byte> TrainPixels = [], TrainLabels = [], TestPixels = [], TestLabels = [];
    }

    /// <summary>Five training batches of ragged sizes and a test batch, plus batches.meta.txt.</summary>
    private static Cifar10Archive BuildCifar10(int seed)
    {
        var rng = new Random(seed);
        var a = new Cifar10Archive();
        var files = new List<(string, byte[])>();
        int[] sizes = [3, 1, 2, 4, 7];
        for (int f = 0; f < 5; f++)
        {
            var labels = Enumerable.Range(0, sizes[f]).Select(_ => new[] { (byte)rng.Next(10) }).ToArray();
            files.Add(($"cifar-10-batches-bin/data_batch_{f + 1}.bin", DataTestUtil.CifarRecords(rng, labels, out var px)));
            a.TrainPixels.AddRange(px);
            a.TrainLabels.AddRange(labels.Select(l => l[0]));
        }
        var testLabels = Enumerable.Range(0, 5).Select(_ => new[] { (byte)rng.Next(10) }).ToArray();
        files.Add(("cifar-10-batches-bin/test_batch.bin", DataTestUtil.CifarRecords(rng, testLabels, out var tp)));
        a.TestPixels.AddRange(tp);
        a.TestLabels.AddRange(testLabels.Select(l => l[0]));
        string meta = string.Join("\n", DatasetInfo.Cifar10.ClassNames.Select(n => n.ToUpperInvariant())) + "\n\n";
        files.Add(("cifar-10-batches-bin/batches.meta.txt", Encoding.ASCII.GetBytes(meta)));
        a.Bytes = DataTestUtil.TarGz(files);
        return a;
    }

    private static DatasetOptions OptionsFor(TempDir dir, string url, string md5) => new()
    {
        CacheDir = dir.Combine("cache"), SystemDirs = [], Progress = null, GetEnvironment = _ => null, Url = url, ExpectedMd5 = md5,
        DownloadIntoDataDir = true, // these tests download into an explicit --data on purpose (`--download`)
    };

    private static void AssertNoLeftovers(string dir)
    {
        if (!Directory.Exists(dir)) return;
        var names = Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Select(Path.GetFileName).ToArray();
        Assert.DoesNotContain(names, n => n!.EndsWith(".part") || n.StartsWith(".extract"));
        Assert.DoesNotContain("cifar-10-binary.tar.gz", names);
        Assert.DoesNotContain("cifar-10-batches-bin", names);
    }

    [Fact]
    public void Cifar10_DownloadsVerifiesExtractsAndCaches()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var archive = BuildCifar10(1);
        server.Serve("c10.tar.gz", new(200, archive.Bytes));
        var reports = new List<DownloadProgress>();
        var options = OptionsFor(dir, server.Url("c10.tar.gz"), DataTestUtil.Md5(archive.Bytes));
        options.Progress = new SyncProgress(reports.Add);

        var train = DatasetCatalog.Load("cifar10", null, train: true, options);
        Assert.Equal(17, train.Count);
        Assert.Equal((3, 32, 32), (train.Channels, train.Height, train.Width));
        Assert.Equal(archive.TrainPixels.ToArray(), train.Pixels);
        Assert.Equal(archive.TrainLabels.ToArray(), train.Labels);
        Assert.Equal("AIRPLANE", train.ClassNames[0]); // read from batches.meta.txt, not the built-in list
        Assert.Equal(DatasetInfo.Cifar10.Mean, train.Mean);
        Assert.True(File.Exists(dir.Combine("cache", "cifar-10-binary.tar.gz")));
        Assert.True(reports.Count >= 1 && reports[^1].Completed && reports[^1].BytesDone == archive.Bytes.Length);
        Assert.Equal(1, server.Requests);

        // Test split and a second load come from the cache: no further request.
        var test = DatasetCatalog.Load("cifar-10", null, train: false, options);
        Assert.Equal(archive.TestPixels.ToArray(), test.Pixels);
        Assert.Equal(archive.TestLabels.ToArray(), test.Labels);
        Assert.Equal(1, server.Requests);
    }

    [Fact]
    public void Cifar10_DownloadGoesIntoTheDataDirectoryWhenGiven()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var archive = BuildCifar10(2);
        server.Serve("a.tgz", new(200, archive.Bytes));
        var ds = DatasetCatalog.Load("cifar10", dir.Combine("data"), true, OptionsFor(dir, server.Url("a.tgz"), DataTestUtil.Md5(archive.Bytes)));
        Assert.Equal(17, ds.Count);
        Assert.True(File.Exists(dir.Combine("data", "cifar-10-batches-bin", "data_batch_5.bin")));
        Assert.False(Directory.Exists(dir.Combine("cache")));
    }

    [Fact]
    public void Cifar10_FileUrlAndPlainPathAndEnvironmentOverrideWork()
    {
        using var dir = new TempDir();
        var archive = BuildCifar10(3);
        string local = dir.Combine("mirror", "cifar-10-binary.tar.gz");
        Directory.CreateDirectory(dir.Combine("mirror"));
        File.WriteAllBytes(local, archive.Bytes);
        string md5 = DataTestUtil.Md5(archive.Bytes);

        var viaFileUrl = DatasetCatalog.Load("cifar10", dir.Combine("d1"), true, OptionsFor(dir, new Uri(local).AbsoluteUri, md5));
        var viaPath = DatasetCatalog.Load("cifar10", dir.Combine("d2"), true, OptionsFor(dir, local, md5));
        var envOptions = OptionsFor(dir, null!, md5);
        envOptions.Url = null;
        envOptions.GetEnvironment = name => name == "VIT_CIFAR10_URL" ? local : null;
        var viaEnv = DatasetCatalog.Load("cifar10", dir.Combine("d3"), false, envOptions);
        Assert.Equal(archive.TrainLabels.ToArray(), viaFileUrl.Labels);
        Assert.Equal(archive.TrainPixels.ToArray(), viaPath.Pixels);
        Assert.Equal(archive.TestLabels.ToArray(), viaEnv.Labels);
    }

    [Fact]
    public void Cifar100_FromLocalArchive_FineLabels()
    {
        using var dir = new TempDir();
        var rng = new Random(100);
        var trainLabels = Enumerable.Range(0, 7).Select(_ => new[] { (byte)rng.Next(20), (byte)rng.Next(100) }).ToArray();
        var testLabels = Enumerable.Range(0, 3).Select(_ => new[] { (byte)rng.Next(20), (byte)rng.Next(100) }).ToArray();
        var bytes = DataTestUtil.TarGz([
            ("cifar-100-binary/train.bin", DataTestUtil.CifarRecords(rng, trainLabels, out var trainPx)),
            ("cifar-100-binary/test.bin", DataTestUtil.CifarRecords(rng, testLabels, out _)),
            ("cifar-100-binary/fine_label_names.txt", Encoding.ASCII.GetBytes(string.Join("\n", DatasetInfo.Cifar100.ClassNames))),
        ]);
        string local = dir.Combine("c100.tar.gz");
        File.WriteAllBytes(local, bytes);
        var ds = DatasetCatalog.Load("cifar100", dir.Combine("data"), true, OptionsFor(dir, local, DataTestUtil.Md5(bytes)));
        Assert.Equal(trainLabels.Select(l => l[1]).ToArray(), ds.Labels);
        Assert.Equal(trainPx, ds.Pixels);
        Assert.Equal(100, ds.ClassCount);
        Assert.Equal("trout", ds.ClassNames[91]);
    }

    [Fact]
    public void WrongMd5_FailsClearly_AndLeavesNothingBehind()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var archive = BuildCifar10(4);
        server.Serve("c10.tar.gz", new(200, archive.Bytes));
        var e = Assert.Throws<ViTScratchException>(() =>
            DatasetCatalog.Load("cifar10", null, true, OptionsFor(dir, server.Url("c10.tar.gz"), new string('0', 32))));
        Assert.Contains("MD5", e.Message);
        Assert.Contains(DataTestUtil.Md5(archive.Bytes), e.Message);
        AssertNoLeftovers(dir.Combine("cache"));
    }

    [Fact]
    public void DefaultMd5_IsTheOfficialOne_ForAMirrorUrl()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var archive = BuildCifar10(5);
        server.Serve("c10.tar.gz", new(200, archive.Bytes));
        var options = OptionsFor(dir, server.Url("c10.tar.gz"), null!);
        options.ExpectedMd5 = null;
        var e = Assert.Throws<ViTScratchException>(() => DatasetCatalog.Load("cifar10", null, true, options));
        Assert.Contains(DatasetCatalog.Cifar10Md5, e.Message);
    }

    [Fact]
    public void TruncatedArchive_WithMatchingMd5_IsReportedAsCorruptAndDeleted()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var full = BuildCifar10(6).Bytes;
        var cut = full.AsSpan(0, full.Length * 2 / 3).ToArray();
        server.Serve("c10.tar.gz", new(200, cut));
        var e = Assert.Throws<ViTScratchException>(() =>
            DatasetCatalog.Load("cifar10", null, true, OptionsFor(dir, server.Url("c10.tar.gz"), DataTestUtil.Md5(cut))));
        Assert.Contains("corrupt or truncated", e.Message);
        AssertNoLeftovers(dir.Combine("cache"));
    }

    [Fact]
    public void ConnectionDroppedMidTransfer_IsReportedAsInterrupted()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var full = BuildCifar10(7).Bytes;
        // Announce the full length, send half, close.
        server.Serve("c10.tar.gz", new(200, full.AsSpan(0, full.Length / 2).ToArray(), DeclaredLength: full.Length));
        var e = Assert.Throws<ViTScratchException>(() =>
            DatasetCatalog.Load("cifar10", null, true, OptionsFor(dir, server.Url("c10.tar.gz"), DataTestUtil.Md5(full))));
        Assert.Contains("interrupted", e.Message);
        AssertNoLeftovers(dir.Combine("cache"));
    }

    [Fact]
    public void NonGzipArchive_IsReportedAsCorrupt()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var junk = new byte[5000];
        new Random(8).NextBytes(junk);
        server.Serve("c10.tar.gz", new(200, junk));
        var e = Assert.Throws<ViTScratchException>(() =>
            DatasetCatalog.Load("cifar10", null, true, OptionsFor(dir, server.Url("c10.tar.gz"), DataTestUtil.Md5(junk))));
        Assert.Contains("corrupt", e.Message);
        AssertNoLeftovers(dir.Combine("cache"));
    }

    [Fact]
    public void ArchiveWithoutTheExpectedDirectory_IsReported()
    {
        using var dir = new TempDir();
        var bytes = DataTestUtil.TarGz([("something-else/readme.txt", Encoding.ASCII.GetBytes("hello"))]);
        File.WriteAllBytes(dir.Combine("x.tgz"), bytes);
        var e = Assert.Throws<ViTScratchException>(() =>
            DatasetCatalog.Load("cifar10", dir.Combine("data"), true, OptionsFor(dir, dir.Combine("x.tgz"), DataTestUtil.Md5(bytes))));
        Assert.Contains("does not contain", e.Message);
    }

    [Fact]
    public void Http404_IsReportedWithWhatToDo()
    {
        using var dir = new TempDir();
        using var server = new LoopbackHttpServer();
        var e = Assert.Throws<ViTScratchException>(() =>
            DatasetCatalog.Load("cifar10", null, true, OptionsFor(dir, server.Url("missing.tar.gz"), "")));
        Assert.Contains("404", e.Message);
        Assert.Contains("--data DIR", e.Message);
        Assert.Contains("VIT_CIFAR10_URL", e.Message);
        AssertNoLeftovers(dir.Combine("cache"));
    }

    [Fact]
    public void ConnectionRefused_IsReportedAsNoNetwork()
    {
        using var dir = new TempDir();
        string url = $"http://127.0.0.1:{DataTestUtil.ClosedLoopbackPort()}/cifar-10-binary.tar.gz";
        var e = Assert.Throws<ViTScratchException>(() => DatasetCatalog.Load("cifar10", null, true, OptionsFor(dir, url, "")));
        Assert.Contains("no network", e.Message);
        Assert.Contains("--data DIR", e.Message);
        AssertNoLeftovers(dir.Combine("cache"));
    }

    [Fact]
    public void DownloadDisabled_SaysWhereItLooked()
    {
        using var dir = new TempDir();
        var options = OptionsFor(dir, "http://127.0.0.1:9/x", "");
        options.AllowDownload = false;
        var e = Assert.Throws<ViTScratchException>(() => DatasetCatalog.Load("cifar100", dir.Combine("data"), true, options));
        Assert.Contains(dir.Combine("data"), e.Message);
        Assert.Contains("--data DIR", e.Message);
    }

    /// <summary>IProgress that reports synchronously (System.Progress posts to a sync context).</summary>
    private sealed class SyncProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }
}
