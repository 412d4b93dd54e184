using System.Text.Json.Nodes;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Optim;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// --ema: the average is the exponential mean of the weights over the averaged steps (against a
/// float64 reference with a bound derived from float32 rounding), training is the run without it
/// bit for bit, validation and the checkpoints' model tensors are the average, and a run resumed
/// inside the averaged stretch continues exactly.
/// </summary>
public class WeightAverageTests : IDisposable
{
    private readonly TempDir _dir = new();

    public WeightAverageTests() => TinyFashionMnist.Write(_dir.Combine("data"));

    // 72 training images in steps of 16: 4 steps an epoch; the average spans the last 2 of 3 epochs.
    private TrainOptions Options(string name, float ema = 0.9f, int emaEpochs = 2) => new()
    {
        Dataset = "fashion-mnist", DataDir = _dir.Combine("data"), Model = "vit-micro", Patch = 7, Epochs = 3, BatchSize = 16,
        Lr = 3e-3f, Device = "cpu", Workers = 1, ValSplit = 0.25f, PatchDropout = 0.5f, Ema = ema, EmaEpochs = emaEpochs,
        EvalTest = "never", OutDir = _dir.Combine(name),
    };

    private static SafeTensorsFile Last(TrainOptions o) => SafeTensors.Read(Path.Combine(o.OutDir, "last.safetensors"));

    [Fact]
    public void TheAverageIsTheExponentialMeanOfTheWeightsAndTrainingIsUnchanged()
    {
        var plain = Options("plain", ema: 0, emaEpochs: 0);
        var averaged = Options("averaged");
        List<EpochMetrics> plainMetrics, averagedMetrics;
        using (var trainer = new Trainer(plain, TextWriter.Null))
        {
            Assert.True(trainer.Run(CancellationToken.None));
            plainMetrics = trainer.Metrics.ToList();
        }

        // The weights after every step of the averaged epochs, as the optimizer left them.
        var seen = new List<Dictionary<string, float[]>>();
        double valLoss, valAccuracy;
        using (var trainer = new Trainer(averaged, TextWriter.Null))
        {
            int from = averaged.EmaStartEpoch() * trainer.TrainLoader.BatchesPerEpoch;
            Assert.Equal(4, from);
            trainer.StepCompleted += step =>
            {
                if (step > from) seen.Add(trainer.Model.StateDict().ToDictionary(t => t.Name, t => t.Data));
            };
            Assert.True(trainer.Run(CancellationToken.None));
            averagedMetrics = trainer.Metrics.ToList();
            // Validation judged the average the checkpoint holds: evaluating the file's model gives the same figures.
            (valLoss, valAccuracy) = Trainer.Evaluate(TrainingCheckpoint.LoadModel(Path.Combine(averaged.OutDir, "last.safetensors"), trainer.Model.Device),
                trainer.ValLoader!);
        }
        Assert.Equal(8, seen.Count);
        Assert.Equal((averagedMetrics[^1].ValLoss, averagedMetrics[^1].ValAccuracy), (valLoss, valAccuracy));

        // Training never reads the average: the losses, the trained weights and the optimizer state are the plain run's, bit for bit.
        Assert.Equal(plainMetrics.Select(m => m.TrainLoss), averagedMetrics.Select(m => m.TrainLoss));
        Assert.Equal(plainMetrics[0].ValLoss, averagedMetrics[0].ValLoss); // epoch 1 comes before the average: the model itself is judged
        var p = Last(plain);
        var a = Last(averaged);
        foreach (var t in p.Tensors)
        {
            string stored = t.Name.StartsWith(TrainingCheckpoint.OptimizerPrefix, StringComparison.Ordinal) ? t.Name : TrainingCheckpoint.WeightsPrefix + t.Name;
            Assert.Equal(t.Data, a.ByName[stored].Data);
        }

        // The file's model tensors are the average: a copy of the weights at the first averaged
        // step, then a ← d·a + (1 − d)·w at each later one, computed here in float64 with the
        // float32 decay the kernels use. Each float32 update rounds at most three times (d·a, the
        // product (1 − d)·w and the sum), each by at most u = 2^-24 of a value no larger than
        // M = max |w|, and the error of earlier steps shrinks by d at each step, so the error is
        // at most 3·u·M·(1 + d + d² + …) < 3·u·M / (1 − d).
        double d = averaged.Ema, oneMinusD = 1f - averaged.Ema;
        foreach (var (name, _) in seen[0])
        {
            var reference = seen[0][name].Select(x => (double)x).ToArray();
            double m = reference.Max(Math.Abs);
            foreach (var step in seen.Skip(1))
                for (int i = 0; i < reference.Length; i++)
                {
                    reference[i] = d * reference[i] + oneMinusD * step[name][i];
                    m = Math.Max(m, Math.Abs(step[name][i]));
                }
            double bound = 3 * Math.Pow(2, -24) * m / (1 - d);
            var stored = a.ByName[name].Data;
            for (int i = 0; i < reference.Length; i++)
                Assert.True(Math.Abs(stored[i] - reference[i]) <= bound, $"{name}[{i}]: {stored[i]} against {reference[i]} (bound {bound:G3})");
            // And it is not simply the last weights.
            Assert.NotEqual(seen[^1][name], stored);
        }
    }

    // Interrupted at the last step before the average (the resume's first step starts it: how a
    // run is branched with a new average) or in the middle of an averaged epoch (the file holds the
    // weights and their average), the run continues to the uninterrupted run's file, bit for bit.
    [Theory]
    [InlineData(4, false)]
    [InlineData(6, true)]
    public void ARunResumedBeforeOrInsideTheAverageContinuesExactly(int stopAfter, bool holdsAverage)
    {
        var full = Options("full");
        using (var trainer = new Trainer(full, TextWriter.Null)) Assert.True(trainer.Run(CancellationToken.None));

        var cut = Options("cut");
        using (var cancel = new CancellationTokenSource())
        using (var trainer = new Trainer(cut, TextWriter.Null))
        {
            trainer.StepCompleted += step => { if (step == stopAfter) cancel.Cancel(); };
            Assert.False(trainer.Run(cancel.Token));
        }
        var mid = Last(cut);
        Assert.Equal(stopAfter, TrainingCheckpoint.ReadPosition(mid, "mid").Step);
        Assert.Equal(holdsAverage, mid.Tensors.Any(t => t.Name.StartsWith(TrainingCheckpoint.WeightsPrefix, StringComparison.Ordinal)));
        using (var trainer = new Trainer(cut, TextWriter.Null, resumeFrom: Path.Combine(cut.OutDir, "last.safetensors")))
            Assert.True(trainer.Run(CancellationToken.None));

        var a = Last(full);
        var b = Last(cut);
        Assert.Equal(a.Tensors.Select(t => t.Name).Order(), b.Tensors.Select(t => t.Name).Order());
        var differing = a.Tensors.Where(t => !t.Data.AsSpan().SequenceEqual(b.ByName[t.Name].Data)).Select(t => t.Name).ToList();
        Assert.True(differing.Count == 0, string.Join(", ", differing));
    }

    // A checkpoint whose options and contents disagree about the average is refused in one line,
    // before anything is loaded: options edited to average a stretch the file holds no average of,
    // or to drop the average the file holds (which would train on from the average as if it were
    // the weights).
    [Theory]
    [InlineData(false, 0.9, 2, "is inside the run's weight average (--ema from step 5), but it holds no average")]
    [InlineData(true, 0.0, 0, "it holds a weight average, but its options have no --ema")]
    [InlineData(true, 0.9, 1, "it holds a weight average, but its options start the average at step 9, after its position (step 6)")]
    public void ACheckpointWhoseOptionsDisagreeAboutTheAverageIsRefused(bool averaged, double ema, int emaEpochs, string expected)
    {
        var o = averaged ? Options("run") : Options("run", ema: 0, emaEpochs: 0);
        using (var cancel = new CancellationTokenSource())
        using (var trainer = new Trainer(o, TextWriter.Null))
        {
            trainer.StepCompleted += step => { if (step == 6) cancel.Cancel(); };
            Assert.False(trainer.Run(cancel.Token));
        }
        var file = Last(o);
        var meta = new Dictionary<string, string>(file.Metadata);
        var options = JsonNode.Parse(meta["train_options"])!.AsObject();
        options["Ema"] = ema;
        options["EmaEpochs"] = emaEpochs;
        meta["train_options"] = options.ToJsonString();
        string edited = _dir.Combine("edited.safetensors");
        SafeTensors.Write(edited, file.Tensors.ToList(), meta);
        var e = Assert.Throws<ViTScratchException>(() => new Trainer(TrainingCheckpoint.ReadOptions(SafeTensors.Read(edited), edited) with { OutDir = _dir.Combine("edited") },
            TextWriter.Null, resumeFrom: edited));
        Assert.Contains(expected, e.Message);
    }

    // fmnist-best's average belongs to its schedule's tail: --ema 0 takes the span away with it,
    // a shorter run shortens it, and neither is an error about a flag the user never gave.
    [Fact]
    public void ARecipesAverageFollowsItsDecayAndLength()
    {
        var recipe = TrainArgs.Parse("--recipe", "fmnist-best");
        Assert.Equal((0.998f, 4), (recipe.Ema, recipe.EmaEpochs));
        var off = TrainArgs.Parse("--recipe", "fmnist-best", "--ema", "0");
        Assert.Equal((0f, 0, -1), (off.Ema, off.EmaEpochs, off.EmaStartEpoch()));
        var shorter = TrainArgs.Parse("--recipe", "fmnist-best", "--epochs", "3");
        Assert.Equal((3, 0), (shorter.EmaEpochs, shorter.EmaStartEpoch()));
        Assert.Equal(0, (Options("x") with { EmaEpochs = 0 }).EmaStartEpoch()); // 0: the whole run
        Assert.Equal(0, (Options("x") with { EmaEpochs = 7 }).EmaStartEpoch()); // unchecked options longer than the run: from its start
    }

    [Theory]
    [InlineData("--ema 1", "--ema must be between 0 and 0.99999, got 1")]
    [InlineData("--ema-epochs 4", "--ema-epochs 4 says how many epochs the weight average spans, but there is no average; give --ema DECAY")]
    [InlineData("--ema 0.99 --ema-epochs 11 --epochs 10", "--ema-epochs 11 is more than the run's 10 epochs; give at most --ema-epochs 10")]
    public void AnAverageOutsideTheRunIsOneLine(string flags, string expected) =>
        InProcessVit.AssertOneLineError(InProcessVit.Run(["train", .. flags.Split(' ')]), expected);

    [Fact]
    public void TheAverageNeedsTheTrainedModelsShape()
    {
        var config = new ViTConfig(ImageSize: 28, PatchSize: 7, NumClasses: 10, Dim: 32, Depth: 1, Heads: 2, MlpDim: 64, Channels: 1, DimHead: 16);
        using var device = Device.Create("cpu");
        var model = new ViT(config, device, 0);
        var optimizer = new AdamW(OptimParam.From(model));
        Assert.Contains("has no parameter", Assert.Throws<ViTScratchException>(() => new WeightAverage(new ViT(config with { Dim = 64 }, device, 0), optimizer, 0.9f)).Message);
        Assert.Contains("parameters and the optimizer steps",
            Assert.Throws<ViTScratchException>(() => new WeightAverage(new ViT(config with { Depth = 2 }, device, 0), optimizer, 0.9f)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new WeightAverage(new ViT(config, device, 0), optimizer, 1f));
    }

    public void Dispose() => _dir.Dispose();
}
