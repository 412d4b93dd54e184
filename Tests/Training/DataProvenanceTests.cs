using System.Text.Json;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// A run knows its data: an explicit --data is searched alone (no fallback to another copy), the
/// checkpoint and config.json record the absolute path, the split sizes and fingerprints, and
/// resume and eval refuse other data unless --data re-targets them on purpose.
/// </summary>
public class DataProvenanceTests : IDisposable
{
    private readonly TempDir _dir = new();

    public DataProvenanceTests() => TinyFashionMnist.Write(_dir.Combine("data"));

    private string[] Train(string data, string run, params string[] more) =>
        ["train", "--data", data, "--out", run, "--batch", "32", "--device", "cpu", "--workers", "1", .. more];

    // Without the fix, every one of these trained on the Debian package's copy (or the cache) with exit code 0.
    [Fact]
    public void AnExplicitDataDirectoryThatLacksTheDatasetIsAnError()
    {
        string empty = _dir.Combine("empty");
        Directory.CreateDirectory(empty);
        InProcessVit.AssertOneLineError(InProcessVit.Run(Train(empty, _dir.Combine("r1"))), $"--data '{empty}' does not hold the fashion-mnist training split", "train-images-idx3-ubyte");
        InProcessVit.AssertOneLineError(InProcessVit.Run(Train(_dir.Combine("missing"), _dir.Combine("r2"))), "does not hold");

        string trainOnly = _dir.Combine("train-only");
        Directory.CreateDirectory(trainOnly);
        foreach (var f in Directory.GetFiles(_dir.Combine("data"), "train-*")) File.Copy(f, Path.Combine(trainOnly, Path.GetFileName(f)));
        InProcessVit.AssertOneLineError(InProcessVit.Run(Train(trainOnly, _dir.Combine("r3"))), "test split", "t10k-images-idx3-ubyte");
        Assert.False(File.Exists(_dir.Combine("r3", "last.safetensors")));
    }

    [Fact]
    public void AnEmptySplitIsAnError()
    {
        string data = _dir.Combine("no-test-images");
        TinyFashionMnist.Write(data, train: 64, test: 0);
        InProcessVit.AssertOneLineError(InProcessVit.Run(Train(data, _dir.Combine("run"), "--epochs", "1")), "test split", "holds no images");
    }

    [Fact]
    public void TheCheckpointAndConfigRecordWhereTheDataCameFromAndWhatItWas()
    {
        string run = _dir.Combine("run");
        Assert.Equal(0, InProcessVit.Run(Train(_dir.Combine("data"), run, "--epochs", "1", "--train-limit", "64")).Code);
        var file = SafeTensors.Read(Path.Combine(run, "last.safetensors"));
        var p = DataProvenance.FromMetadata(file.Metadata, "last")!;
        Assert.Equal(("fashion-mnist", _dir.Combine("data"), 96, 40), (p.Dataset, p.Path, p.TrainImages, p.TestImages)); // on disk, before --train-limit
        Assert.Matches("^[0-9a-f]{32}$", p.TrainFingerprint);
        Assert.NotEqual(p.TrainFingerprint, p.TestFingerprint);

        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json")));
        var data = config.RootElement.GetProperty("Data");
        Assert.Equal(p.Path, data.GetProperty("Path").GetString());
        Assert.Equal(p.TrainFingerprint, data.GetProperty("TrainFingerprint").GetString());
        Assert.Equal(64, config.RootElement.GetProperty("TrainLimit").GetInt32());
    }

    // The fingerprint is of the content: one changed pixel, or the same images in another order, changes it.
    [Fact]
    public void TheFingerprintSeesOnePixelAndTheOrder()
    {
        var a = DataTestUtil.RandomDataset(20, 1, 5, 5, 3, seed: 1);
        var pixels = (byte[])a.Pixels.Clone();
        pixels[137] ^= 1;
        var b = new ViTScratch.Training.Data.ImageDataset(a.Name, a.Count, 1, 5, 5, pixels, a.Labels, a.ClassNames, a.Mean, a.Std);
        Assert.NotEqual(a.Fingerprint(), b.Fingerprint());
        Assert.Equal(a.Fingerprint(), DataTestUtil.RandomDataset(20, 1, 5, 5, 3, seed: 1).Fingerprint());
        Assert.NotEqual(a.Fingerprint(), a.Take(19).Fingerprint());
    }

    [Fact]
    public void ResumeRefusesOtherDataUnlessDataRetargetsItAndNeverAnotherEpochLength()
    {
        string run = _dir.Combine("run");
        string data = _dir.Combine("data");
        // Interrupt a 2-epoch run after its second step.
        var o = TrainingCheckpoint.ReadOptions(SafeTensors.Read(WriteInterruptedRun(run, data)), "last");
        Assert.Equal(2, TrainingCheckpoint.ReadPosition(SafeTensors.Read(Path.Combine(run, "last.safetensors")), "last").Step);

        // The same directory, other images (same count): refused.
        TinyFashionMnist.Write(data, seed: 99);
        InProcessVit.AssertOneLineError(InProcessVit.Run("train", "--resume", run, "--device", "cpu"), "is not the data", "pass --data explicitly");
        // Named on purpose: a warning, and the run goes on.
        var retargeted = InProcessVit.Run("train", "--resume", run, "--device", "cpu", "--data", data);
        Assert.True(retargeted.Code == 0, retargeted.Out + retargeted.Err);
        Assert.Contains("warning: the training split", retargeted.Out);

        // Another epoch length would silently change the schedule: refused even when named.
        string run2 = _dir.Combine("run2");
        TinyFashionMnist.Write(data);
        WriteInterruptedRun(run2, data);
        string bigger = _dir.Combine("bigger");
        TinyFashionMnist.Write(bigger, train: 160);
        InProcessVit.AssertOneLineError(InProcessVit.Run("train", "--resume", run2, "--device", "cpu", "--data", bigger), "96 training images", "160");
        Assert.NotNull(o);
    }

    // `vit eval` from any working directory evaluates on the data the run recorded, not on a
    // relative --data resolved against the new directory (or a copy found elsewhere).
    [Fact]
    public void EvalFindsTheRunsDataFromAnotherWorkingDirectoryAndRefusesChangedData()
    {
        var train = VitProcess.Run(_dir.Path, "train", "--data", "data", "--out", "run", "--epochs", "1", "--batch", "32", "--device", "cpu");
        Assert.True(train.Code == 0, train.Out + train.Err);
        string best = _dir.Combine("run", "best.safetensors");
        var eval = VitProcess.Run("/", "eval", "--checkpoint", best, "--device", "cpu");
        Assert.True(eval.Code == 0, eval.Out + eval.Err);
        Assert.Contains("fashion-mnist test set (40 images)", eval.Out);

        TinyFashionMnist.Write(_dir.Combine("data"), seed: 123);
        InProcessVit.AssertOneLineError(InProcessVit.Run("eval", "--checkpoint", best, "--device", "cpu"), "test split", "is not the data");
        var retargeted = InProcessVit.Run("eval", "--checkpoint", best, "--device", "cpu", "--data", _dir.Combine("data"));
        Assert.Equal(0, retargeted.Code);
        Assert.Contains("warning: the test split", retargeted.Out);

        Directory.Delete(_dir.Combine("data"), recursive: true);
        InProcessVit.AssertOneLineError(InProcessVit.Run("eval", "--checkpoint", best, "--device", "cpu"), "no longer where it records it", "--data DIR");
    }

    private static string WriteInterruptedRun(string run, string data)
    {
        var o = new TrainOptions
        {
            Dataset = "fashion-mnist", DataDir = data, Model = "vit-micro", Patch = 7, Epochs = 2, BatchSize = 32,
            Device = "cpu", Workers = 1, OutDir = run,
        };
        using var cancel = new CancellationTokenSource();
        using (var trainer = new Trainer(o, TextWriter.Null))
        {
            trainer.StepCompleted += step => { if (step == 2) cancel.Cancel(); };
            Assert.False(trainer.Run(cancel.Token));
        }
        return Path.Combine(run, "last.safetensors");
    }

    public void Dispose() => _dir.Dispose();
}
