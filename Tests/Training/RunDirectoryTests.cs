using ViTScratch.Tests.Data;
using ViTScratch.Training;

namespace ViTScratch.Tests.Training;

/// <summary>
/// A run directory is never replaced without being asked, interrupted writes leave nothing behind,
/// a side file that cannot be written costs only that file, and every path the CLI writes fails
/// with one line.
/// </summary>
public class RunDirectoryTests : IDisposable
{
    private readonly TempDir _dir = new();

    public RunDirectoryTests() => TinyFashionMnist.Write(_dir.Combine("data"));

    private string[] Tiny(params string[] more) =>
        ["train", "--data", _dir.Combine("data"), "--batch", "32", "--device", "cpu", "--workers", "1",
         .. (more.Contains("--epochs") ? Array.Empty<string>() : ["--epochs", "1"]), .. more];

    private static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    // The README's train command, run twice from the same working directory: both results stay.
    [Fact]
    public void TheSameTrainCommandTwiceKeepsBothRuns()
    {
        var first = VitProcess.Run(_dir.Path, Tiny());
        Assert.True(first.Code == 0, first.Out + first.Err);
        string runs = _dir.Combine("runs");
        var firstFiles = Snapshot(Path.Combine(runs, "fashion-mnist-vit-micro"));

        var second = VitProcess.Run(_dir.Path, Tiny("--seed", "1"));
        Assert.True(second.Code == 0, second.Out + second.Err);
        Assert.Contains("holds an earlier run; this one goes to runs/fashion-mnist-vit-micro-2", second.Out);

        Assert.Equal(firstFiles, Snapshot(Path.Combine(runs, "fashion-mnist-vit-micro")));
        foreach (var f in new[] { "config.json", "metrics.csv", "curves.png", "best.safetensors", "last.safetensors" })
            Assert.True(File.Exists(Path.Combine(runs, "fashion-mnist-vit-micro-2", f)), f);
    }

    [Fact]
    public void AnExplicitOutThatHoldsARunIsRefusedUnlessForced()
    {
        string run = _dir.Combine("mine");
        Assert.Equal(0, InProcessVit.Run(Tiny("--out", run)).Code);
        var before = Snapshot(run);

        InProcessVit.AssertOneLineError(InProcessVit.Run(Tiny("--out", run, "--seed", "4")), "already holds a run", $"--resume {run}", "--force");
        Assert.Equal(before, Snapshot(run));

        var forced = InProcessVit.Run(Tiny("--out", run, "--seed", "4", "--force"));
        Assert.Equal(0, forced.Code);
        Assert.NotEqual(before["last.safetensors"], File.ReadAllBytes(Path.Combine(run, "last.safetensors")));
        Assert.Equal(2, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length); // the old run's rows are gone with it
    }

    [Fact]
    public void TemporaryFilesOfInterruptedWritesAreRemovedWhenTheFolderIsUsedAgain()
    {
        string run = _dir.Combine("stale");
        Directory.CreateDirectory(run);
        string[] stale = [".last.safetensors.0123456789abcdef0123456789abcdef.tmp", "metrics.csv.tmp-4242", "curves.png.tmp-77.png"];
        foreach (var f in stale) File.WriteAllText(Path.Combine(run, f), "half a file");
        File.WriteAllText(Path.Combine(run, "notes.txt"), "the user's own file");

        Assert.Equal(0, InProcessVit.Run(Tiny("--out", run)).Code);
        foreach (var f in stale) Assert.False(File.Exists(Path.Combine(run, f)), f);
        Assert.True(File.Exists(Path.Combine(run, "notes.txt")));
        Assert.Empty(Directory.GetFiles(run, "*tmp*"));
    }

    [Fact]
    public void ASideFileThatCannotBeWrittenWarnsAndTrainingGoesOn()
    {
        string run = _dir.Combine("side");
        Directory.CreateDirectory(Path.Combine(run, "curves.png")); // a directory where the plot should go
        var r = InProcessVit.Run(Tiny("--out", run, "--epochs", "2"));
        Assert.True(r.Code == 0, r.Out + r.Err);
        Assert.Contains("warning: curves.png not written", r.Out);
        Assert.Contains("epoch 2/2:", r.Out);
        Assert.True(File.Exists(Path.Combine(run, "last.safetensors")));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length);
    }

    [Fact]
    public void EveryPathTheCliWritesFailsWithOneLine()
    {
        string blocker = _dir.Combine("a-file");
        File.WriteAllText(blocker, "not a directory");
        InProcessVit.AssertOneLineError(InProcessVit.Run(Tiny("--out", Path.Combine(blocker, "run"))), "cannot write to the run directory", blocker);
        InProcessVit.AssertOneLineError(InProcessVit.Run("kernels", "ptx", "--arch", "sm_80", "--out", Path.Combine(blocker, "ptx")), blocker);

        string run = _dir.Combine("served");
        Assert.Equal(0, InProcessVit.Run(Tiny("--out", run)).Code);
        string best = Path.Combine(run, "best.safetensors");
        InProcessVit.AssertOneLineError(InProcessVit.Run("predict", "--checkpoint", best, "--index", "0", "--device", "cpu", "--attention-map", Path.Combine(blocker, "map.png")),
            "cannot write", "map.png");
    }

    public void Dispose() => _dir.Dispose();
}
