using System.Diagnostics;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// A real full disk: a small tmpfs mounted for the test (root only, as on this project's machines
/// and CI). A run that cannot start says so in one line; a disk that fills during training costs
/// the epoch in progress at most, never the checkpoint already on disk.
/// </summary>
public class DiskFullTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _mount;

    public DiskFullTests()
    {
        TinyFashionMnist.Write(_dir.Combine("data"));
        _mount = _dir.Combine("disk");
        Directory.CreateDirectory(_mount);
        Tmpfs.Mount(_mount, megabytes: 32);
    }

    /// <summary>Fills the file system holding <paramref name="dir"/> to the last byte.</summary>
    private static string Fill(string dir)
    {
        string filler = Path.Combine(dir, "filler");
        using var f = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0); // unbuffered: nothing left to flush
        var chunk = new byte[1 << 16];
        foreach (int size in new[] { 1 << 16, 1 })
        {
            try { while (true) f.Write(chunk, 0, size); }
            catch (IOException) { }
        }
        return filler;
    }

    [TmpfsFact]
    public void ARunOnAFullDiskFailsWithOneLine()
    {
        Fill(_mount);
        var r = InProcessVit.Run("train", "--data", _dir.Combine("data"), "--out", Path.Combine(_mount, "run"), "--epochs", "1", "--device", "cpu");
        Assert.Equal(1, r.Code);
        string err = r.Err.TrimEnd();
        Assert.Contains("the disk is full", err);
        Assert.Contains(Path.Combine(_mount, "run"), err);
        Assert.DoesNotContain("\n", err);
    }

    [TmpfsFact]
    public void ADiskThatFillsDuringTrainingKeepsTheLastCheckpointAndItResumes()
    {
        string run = Path.Combine(_mount, "run");
        var o = new TrainOptions
        {
            Dataset = "fashion-mnist", DataDir = _dir.Combine("data"), Model = "vit-micro", Patch = 7, Epochs = 3, BatchSize = 32,
            Device = "cpu", Workers = 1, OutDir = run,
        };
        string? filler = null;
        var log = new StringWriter();
        var e = Assert.Throws<ViTScratchException>(() =>
        {
            using var trainer = new Trainer(o, log);
            trainer.StepCompleted += step => { if (step == 4) filler = Fill(_mount); }; // during epoch 2
            trainer.Run(CancellationToken.None);
        });
        Assert.Contains("the disk is full", e.Message);
        Assert.Contains("last.safetensors", e.Message);
        Assert.Contains($"vit train --resume {run}", e.Message);
        Assert.Contains("epoch 1/3:", log.ToString());

        // The checkpoint of epoch 1 is whole; no temporary file is left in the way.
        string last = Path.Combine(run, "last.safetensors");
        var pos = TrainingCheckpoint.ReadPosition(SafeTensors.Read(last), last);
        Assert.Equal((1, 0, 3), (pos.Epoch, pos.Batch, pos.Step));
        Assert.Empty(Directory.GetFiles(run, "*.tmp"));

        // Space freed: the run continues from there to the end.
        File.Delete(filler!);
        var resumed = InProcessVit.Run("train", "--resume", run, "--device", "cpu");
        Assert.True(resumed.Code == 0, resumed.Out + resumed.Err);
        Assert.Contains("epoch 3/3:", resumed.Out);
    }

    public void Dispose()
    {
        Tmpfs.Unmount(_mount);
        _dir.Dispose();
    }
}

/// <summary>Mounting a size-limited tmpfs: the one way to get a real ENOSPC without filling the machine's disk.</summary>
internal static class Tmpfs
{
    public const string SkipReason = "mounting a tmpfs needs root (or CAP_SYS_ADMIN): the full-disk tests run on the project's machines and CI, which have it";

    public static readonly Lazy<bool> Available = new(() =>
    {
        string probe = Path.Combine(Path.GetTempPath(), "vit-tmpfs-probe-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(probe);
        try
        {
            if (Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe) != 0) return false;
            Run("umount", probe);
            return true;
        }
        catch (System.ComponentModel.Win32Exception) { return false; } // no mount binary
        finally { try { Directory.Delete(probe); } catch (IOException) { } }
    });

    public static void Mount(string dir, int megabytes)
    {
        if (!Available.Value) return; // the facts using it are skipped
        Assert.Equal(0, Run("mount", "-t", "tmpfs", "-o", $"size={megabytes}m", "tmpfs", dir));
    }

    public static void Unmount(string dir)
    {
        if (Available.Value) Run("umount", dir);
    }

    private static int Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        p.WaitForExit();
        return p.ExitCode;
    }
}

/// <summary>A fact that needs a tmpfs mount; skipped, visibly, where mounting is not permitted.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (!Tmpfs.Available.Value) Skip = Tmpfs.SkipReason;
    }
}
