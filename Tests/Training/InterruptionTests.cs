using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// An interruption, wherever it lands, leaves a last.safetensors at the last finished step from
/// which the run continues exactly: during the test evaluation, while the step waits for a slow
/// data loader, and as a real SIGINT or SIGTERM sent to a `vit train` process.
/// </summary>
public class InterruptionTests : IDisposable
{
    private readonly TempDir _dir = new();

    public InterruptionTests() => TinyFashionMnist.Write(_dir.Combine("data"));

    private TrainOptions Options(string name, int epochs = 2) => new()
    {
        Dataset = "fashion-mnist", DataDir = _dir.Combine("data"), Model = "vit-micro", Patch = 7, Epochs = epochs, BatchSize = 32,
        Lr = 2e-3f, WarmupEpochs = 0.5f, Device = "cpu", Seed = 3, Workers = 2, Augment = "crop,flip", PatchDropout = 0.5f,
        EvalTest = "epoch", OutDir = _dir.Combine(name),
    };

    /// <summary>Trains <paramref name="o"/>, letting <paramref name="arrange"/> wire an interruption into the trainer first.</summary>
    private static (bool Finished, List<EpochMetrics> Metrics, string Log) Train(TrainOptions o, string? resume = null,
        Action<Trainer, CancellationTokenSource>? arrange = null)
    {
        using var cancel = new CancellationTokenSource();
        var log = new StringWriter();
        using var trainer = new Trainer(o, log, resumeFrom: resume);
        arrange?.Invoke(trainer, cancel);
        bool finished = trainer.Run(cancel.Token);
        return (finished, trainer.Metrics.ToList(), log.ToString());
    }

    private void AssertResumesToTheUninterruptedRun(TrainOptions interrupted)
    {
        var resumed = Train(interrupted, resume: Path.Combine(interrupted.OutDir, "last.safetensors"));
        Assert.True(resumed.Finished);
        var full = Train(Options("full"));
        Assert.Equal(full.Metrics.Select(m => (m.TrainLoss, m.TrainAccuracy, m.TestLoss, m.TestAccuracy)),
                     resumed.Metrics.Select(m => (m.TrainLoss, m.TrainAccuracy, m.TestLoss, m.TestAccuracy)));
        var a = SafeTensors.Read(_dir.Combine("full", "last.safetensors"));
        var b = SafeTensors.Read(Path.Combine(interrupted.OutDir, "last.safetensors"));
        foreach (var t in a.Tensors) Assert.Equal(t.Data, b.ByName[t.Name].Data); // weights and optimizer state, bit for bit
    }

    [Fact]
    public void InterruptedDuringTheTestEvaluationSavesTheWholeEpochAndResumesExactly()
    {
        var o = Options("eval-interrupted");
        var run = Train(o, arrange: (trainer, cancel) =>
            trainer.TestLoader.Options.BeforePrepare = _ => cancel.Cancel()); // Ctrl+C while evaluating epoch 1
        Assert.False(run.Finished);
        Assert.Empty(run.Metrics); // epoch 1 never finished its evaluation...
        Assert.Contains("interrupted: saved", run.Log);
        Assert.Contains($"vit train --resume {o.OutDir}", run.Log);
        var pos = TrainingCheckpoint.ReadPosition(SafeTensors.Read(Path.Combine(o.OutDir, "last.safetensors")), "last");
        Assert.Equal((0, 3, 3), (pos.Epoch, pos.Batch, pos.Step)); // ...but all three of its steps are kept
        AssertResumesToTheUninterruptedRun(o);
    }

    [Fact]
    public void InterruptedWhileWaitingForASlowLoaderSavesTheLastFinishedStep()
    {
        var o = Options("loader-interrupted");
        int stalled = 0;
        var run = Train(o, arrange: (trainer, cancel) =>
        {
            // The worker for batch 2 of the first epoch stalls until a second after Ctrl+C, which
            // arrives just after step 2, so the step loop is surely waiting for that batch when it
            // lands. (A fixed stall raced the steps: a worker that starts batch 2 early can finish
            // its sleep within the 100 ms after step 2 on a fast host, and step 3 then ran.)
            trainer.TrainLoader.Options.BeforePrepare = b =>
            {
                if (b != 2 || Interlocked.Exchange(ref stalled, 1) != 0) return;
                cancel.Token.WaitHandle.WaitOne(TimeSpan.FromMinutes(2));
                Thread.Sleep(1000);
            };
            trainer.StepCompleted += step => { if (step == 2) cancel.CancelAfter(TimeSpan.FromMilliseconds(100)); };
        });
        Assert.False(run.Finished);
        Assert.Contains("interrupted: saved", run.Log);
        var pos = TrainingCheckpoint.ReadPosition(SafeTensors.Read(Path.Combine(o.OutDir, "last.safetensors")), "last");
        Assert.Equal((0, 2, 2), (pos.Epoch, pos.Batch, pos.Step));
        AssertResumesToTheUninterruptedRun(o);
    }

    [Fact]
    public void InterruptedAsTheNextEpochStartsKeepsTheEpochsMetricsInTheCheckpoint()
    {
        var o = Options("between-epochs", epochs: 3);
        int firstBatches = 0;
        var run = Train(o, arrange: (trainer, cancel) =>
            trainer.TrainLoader.Options.BeforePrepare = b => { if (b == 0 && Interlocked.Increment(ref firstBatches) == 2) cancel.Cancel(); });
        Assert.False(run.Finished);
        Assert.Single(run.Metrics);
        // metrics.csv lost (a side file): the resumed run still knows epoch 1 from the checkpoint.
        File.Delete(Path.Combine(o.OutDir, "metrics.csv"));
        var resumed = Train(o, resume: Path.Combine(o.OutDir, "last.safetensors"));
        Assert.True(resumed.Finished);
        Assert.Equal([1, 2, 3], resumed.Metrics.Select(m => m.Epoch));
        Assert.Equal(run.Metrics[0], resumed.Metrics[0]);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(o.OutDir, "metrics.csv")).Length);
    }

    [Theory]
    [InlineData(VitProcess.SIGINT, 130)]
    [InlineData(VitProcess.SIGTERM, 143)]
    public void ASignalToVitTrainSavesAResumableCheckpointAndExitsNonZero(int signal, int expectedCode)
    {
        string run = _dir.Combine($"signal-{signal}");
        // 100,000 epochs (the most --epochs allows): the run must still be going when the signal
        // lands. With 100, a starved test process (CI shares two cores) read "epoch 1" so late that
        // the tiny run had finished all of them and exited 0 before the signal was sent.
        using var vit = VitProcess.Start(_dir.Path, "train", "--data", _dir.Combine("data"), "--out", run, "--epochs", "100000",
            "--batch", "32", "--device", "cpu", "--workers", "1");
        Assert.True(vit.WaitForOutput("epoch 1/100000:", TimeSpan.FromMinutes(2)), $"no epoch finished:\n{vit.Out}\n{vit.Err}");
        vit.Signal(signal);
        int code = vit.WaitForExit(TimeSpan.FromMinutes(1));

        Assert.Equal(expectedCode, code);
        Assert.Contains("interrupted: saved", vit.Out);
        Assert.Contains($"continue with: vit train --resume {run}", vit.Out);
        var last = Path.Combine(run, "last.safetensors");
        var pos = TrainingCheckpoint.ReadPosition(SafeTensors.Read(last), last);
        Assert.InRange(pos.Epoch, 1, 99_999);
        // The recipe holds out 10 of the 96 images for validation: 86 train in 2 full batches of 32 per epoch.
        Assert.True(pos.Step >= pos.Epoch * 2 && pos.Step <= pos.Epoch * 2 + 2, $"step {pos.Step} at epoch {pos.Epoch}");
        // Resumable: the trainer accepts it and continues from that position.
        var options = TrainingCheckpoint.ReadOptions(SafeTensors.Read(last), last);
        using var trainer = new Trainer(options, TextWriter.Null, resumeFrom: last);
    }

    public void Dispose() => _dir.Dispose();
}
