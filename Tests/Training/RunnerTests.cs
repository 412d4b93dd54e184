using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// The `vit` runner end to end on a tiny generated Fashion-MNIST (IDX files written by the test):
/// run files, exact resume after an interruption, reproducibility from --seed, and one-line errors.
/// </summary>
public class RunnerTests : IDisposable
{
    private readonly TempDir _dir = new();

    // 96 train / 40 test images of 28x28 with learnable structure.
    public RunnerTests() => TinyFashionMnist.Write(_dir.Path);

    private TrainOptions Options(string name) => new()
    {
        Dataset = "fashion-mnist", DataDir = _dir.Path, Model = "vit-micro", Epochs = 2, BatchSize = 32,
        Lr = 2e-3f, WarmupEpochs = 0.5f, Device = "cpu", Seed = 3, Workers = 2, Augment = "crop,flip", PatchDropout = 0.5f,
        EvalTest = "epoch", OutDir = _dir.Combine(name),
    };

    private static IReadOnlyList<EpochMetrics> Train(TrainOptions o, string? resume = null, int stopAfterStep = 0)
    {
        using var cancel = new CancellationTokenSource();
        // The runner's observer, as `vit train` runs it: it draws curves.png.
        using var trainer = new Trainer(o, TextWriter.Null, resumeFrom: resume, observer: new ConsoleTrainingObserver(TextWriter.Null, o.OutDir, "test"));
        if (stopAfterStep > 0) trainer.StepCompleted += step => { if (step == stopAfterStep) cancel.Cancel(); };
        bool finished = trainer.Run(cancel.Token);
        Assert.Equal(stopAfterStep == 0, finished);
        return trainer.Metrics.ToList();
    }

    [Fact]
    public void RunWritesItsFilesAndResumeContinuesExactly()
    {
        var full = Train(Options("full"));
        foreach (var f in new[] { "config.json", "metrics.csv", "curves.png", "best.safetensors", "last.safetensors" })
            Assert.True(File.Exists(_dir.Combine("full", f)), $"missing {f}");
        Assert.Equal(3, File.ReadAllLines(_dir.Combine("full", "metrics.csv")).Length); // header + 2 epochs

        // Interrupt in the middle of epoch 1 (3 steps per epoch), then resume from last.safetensors.
        var o = Options("resumed");
        Train(o, stopAfterStep: 2);
        var resumed = Train(o, resume: Path.Combine(o.OutDir, "last.safetensors"));

        Assert.Equal(full.Count, resumed.Count);
        for (int i = 0; i < full.Count; i++)
        {
            Assert.Equal(full[i].TrainLoss, resumed[i].TrainLoss);
            Assert.Equal(full[i].TrainAccuracy, resumed[i].TrainAccuracy);
            Assert.Equal(full[i].TestLoss, resumed[i].TestLoss);
            Assert.Equal(full[i].TestAccuracy, resumed[i].TestAccuracy);
        }
        // The same tensors, bit for bit. (Not the same file length: the header holds the run's
        // options, whose output directory differs, and is padded to 8 bytes.)
        var a = global::ViTScratch.Model.Checkpoints.SafeTensors.Read(_dir.Combine("full", "last.safetensors"));
        var b = global::ViTScratch.Model.Checkpoints.SafeTensors.Read(_dir.Combine("resumed", "last.safetensors"));
        Assert.Equal(a.Tensors.Select(t => t.Name).Order(), b.Tensors.Select(t => t.Name).Order());
        foreach (var t in a.Tensors) Assert.Equal(t.Data, b.ByName[t.Name].Data); // weights and optimizer state, bit for bit
    }

    [Fact]
    public void EvalAndPredictReadTheRunsCheckpoint()
    {
        var o = Options("served") with { Epochs = 1 };
        Train(o);
        string best = Path.Combine(o.OutDir, "best.safetensors");
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        Assert.Equal(0, Program.Run(["eval", "--checkpoint", best, "--data", _dir.Path, "--device", "cpu"], stdout, stderr));
        Assert.Contains("40 images", stdout.ToString());

        string map = _dir.Combine("map.png");
        Assert.Equal(0, Program.Run(["predict", "--checkpoint", best, "--index", "3", "--attention-map", map, "--device", "cpu"], stdout, stderr));
        string text = stdout.ToString();
        Assert.Contains("test image 3", text);
        Assert.Equal(5, System.Text.RegularExpressions.Regex.Matches(text, @"^\s+\d+\.\d\d%  \S", System.Text.RegularExpressions.RegexOptions.Multiline).Count); // the top-5 lines
        var png = File.ReadAllBytes(map);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);

        // An image file goes through the same path: write a PNG, predict it.
        string image = _dir.Combine("digit.png");
        using (var bmp = new SkiaSharp.SKBitmap(28, 28))
        {
            for (int y = 0; y < 28; y++) for (int x = 0; x < 28; x++) bmp.SetPixel(x, y, new SkiaSharp.SKColor((byte)(x * 9), (byte)(y * 9), 80));
            using var data = bmp.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(image, data.ToArray());
        }
        Assert.Equal(0, Program.Run(["predict", "--checkpoint", best, image, "--device", "cpu"], stdout, stderr));
        Assert.Equal("", stderr.ToString());
    }

    // --tta flip: validation and test are judged with the mirror images, and `vit eval` / `vit
    // predict` do the same for the run's checkpoint unless told otherwise.
    [Fact]
    public void EvalAndPredictFollowTheRunsTestTimeAugmentation()
    {
        var o = Options("tta") with { Epochs = 1, Tta = "flip", ValSplit = 0.25f };
        var metrics = Train(o);
        // The same run without the flip trains the same model (an evaluation draws no random
        // numbers) and validates and tests it differently.
        var plain = Train(Options("tta-none") with { Epochs = 1, Tta = "none", ValSplit = 0.25f });
        Assert.Equal(plain[0].TrainLoss, metrics[0].TrainLoss);
        Assert.NotEqual(plain[0].ValLoss, metrics[0].ValLoss);
        Assert.NotEqual(plain[0].TestLoss, metrics[0].TestLoss);
        string best = Path.Combine(o.OutDir, "best.safetensors");
        string Eval(params string[] extra)
        {
            var stdout = new StringWriter();
            Assert.Equal(0, Program.Run(["eval", "--checkpoint", best, "--device", "cpu", .. extra], stdout, new StringWriter()));
            return stdout.ToString().Split('\n')[0];
        }
        string flip = Eval(), none = Eval("--tta", "none");
        Assert.Contains("mirror image (--tta flip)", flip);
        Assert.DoesNotContain("mirror", none);
        // The run's own test figure of that epoch is the flip evaluation's (the loss: 40 images
        // give accuracies in steps of 2.5%, which the flip may not move), not the plain one's.
        Assert.Contains($"loss {metrics[0].TestLoss:F4}", flip);
        Assert.DoesNotContain($"loss {metrics[0].TestLoss:F4}", none);

        string Predict(params string[] extra)
        {
            var stdout = new StringWriter();
            Assert.Equal(0, Program.Run(["predict", "--checkpoint", best, "--index", "0", "--device", "cpu", .. extra], stdout, new StringWriter()));
            return stdout.ToString();
        }
        string predicted = Predict(), predictedPlain = Predict("--tta", "none");
        Assert.Contains("averaged with its mirror image", predicted);
        // The probabilities differ, not only the heading.
        Assert.NotEqual(predicted.Split('\n').Skip(1), predictedPlain.Split('\n').Skip(1));

        var exported = new StringWriter();
        string onnx = _dir.Combine("tta.onnx");
        Assert.Equal(0, Program.Run(["export", "--checkpoint", best, "--out", onnx], exported, new StringWriter()));
        Assert.Contains("each image averaged with its mirror image (--tta flip)", exported.ToString());
        var proto = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));
        Assert.Equal("flip", proto.MetadataProps.Single(p => p.Key == "test_time_augmentation").Value);
        Assert.Contains(proto.Graph.Node, n => n.OpType == "Slice");
    }

    [Fact]
    public void SameSeedSameRunOnTheCpu()
    {
        var first = Train(Options("one") with { Epochs = 1 });
        var second = Train(Options("two") with { Epochs = 1 });
        Assert.Equal(first[0].TrainLoss, second[0].TrainLoss);
        Assert.Equal(first[0].TestLoss, second[0].TestLoss);
    }

    // --unmasked-epochs: the last epochs train on every patch. With every epoch unmasked the run is
    // the run without patch dropout, bit for bit (the layer keeps its dropout site, so no other
    // seed moves); with the last epoch unmasked, the first epoch is the patch-dropout run's and
    // the second is not.
    [Fact]
    public void UnmaskedEpochsTrainTheLastEpochsOnEveryPatch()
    {
        var masked = Train(Options("masked"));
        var lastUnmasked = Train(Options("last") with { UnmaskedEpochs = 1 });
        var allUnmasked = Train(Options("all") with { UnmaskedEpochs = 2 });
        var noPatchDropout = Train(Options("none") with { PatchDropout = 0 });

        Assert.Equal(masked[0].TrainLoss, lastUnmasked[0].TrainLoss);
        Assert.Equal(masked[0].TestLoss, lastUnmasked[0].TestLoss);
        Assert.NotEqual(masked[1].TrainLoss, lastUnmasked[1].TrainLoss);
        Assert.NotEqual(masked[0].TrainLoss, noPatchDropout[0].TrainLoss); // patch dropout does change a step here
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(noPatchDropout[i].TrainLoss, allUnmasked[i].TrainLoss);
            Assert.Equal(noPatchDropout[i].TestLoss, allUnmasked[i].TestLoss);
        }

        // Interrupted inside the unmasked epoch (step 4 of 6) and resumed: the same run.
        var o = Options("resumed") with { UnmaskedEpochs = 1 };
        Train(o, stopAfterStep: 4);
        var resumed = Train(o, resume: Path.Combine(o.OutDir, "last.safetensors"));
        Assert.Equal(lastUnmasked.Select(m => m.TrainLoss), resumed.Select(m => m.TrainLoss));
        Assert.Equal(lastUnmasked.Select(m => m.TestLoss), resumed.Select(m => m.TestLoss));
    }

    // --unmasked-lr restarts the learning rate for the unmasked epochs only: the masked epoch is
    // the run without it, bit for bit; the unmasked one trains at the restarted rate (a different
    // result); and a run interrupted inside the restart resumes exactly.
    [Fact]
    public void UnmaskedLrRestartsTheScheduleForTheUnmaskedEpochsOnly()
    {
        var plain = Train(Options("plain") with { UnmaskedEpochs = 1 });
        var o = Options("restarted") with { UnmaskedEpochs = 1, UnmaskedLr = 0.05f };
        var restarted = Train(o);
        Assert.Equal(plain[0].TrainLoss, restarted[0].TrainLoss);
        Assert.Equal(plain[0].TestLoss, restarted[0].TestLoss);
        Assert.Equal(plain[0].Lr, restarted[0].Lr);
        Assert.NotEqual(plain[1].TrainLoss, restarted[1].TrainLoss);

        var resumedOptions = o with { OutDir = o.OutDir + "-resumed" };
        Train(resumedOptions, stopAfterStep: 4);
        var resumed = Train(resumedOptions, resume: Path.Combine(resumedOptions.OutDir, "last.safetensors"));
        Assert.Equal(restarted.Select(m => m.TrainLoss), resumed.Select(m => m.TrainLoss));
        Assert.Equal(restarted.Select(m => m.TestLoss), resumed.Select(m => m.TestLoss));
    }

    [Theory]
    [InlineData("crop,flip", 2, 2, true)]
    [InlineData("crop", 1, 1, false)]
    [InlineData("flip", 3, 0, true)]      // no crop asked for: the padding flag has nothing to act on
    [InlineData("none", 2, 0, false)]
    public void CropPaddingFlagReachesTheLoader(string augment, int padding, int wantPadding, bool wantFlip)
    {
        var o = TrainArgs.Parse("--augment", augment, "--crop-padding", padding.ToString());
        var l = Trainer.TrainLoaderOptions(o, ViTScratch.Training.Data.DatasetInfo.FashionMnist, 60_000);
        Assert.Equal(wantPadding, l.CropPadding);
        Assert.Equal(wantFlip, l.HorizontalFlip);
    }

    [Fact]
    public void SizeFlagsOverrideOnlyWhatTheyName()
    {
        var o = TrainArgs.Parse("--dim", "96", "--depth", "6", "--mlp-dim", "384");
        var c = o.ModelConfig(1, 28, 28, 10);
        var micro = ViTScratch.Model.ViTPresets.Micro;
        Assert.Equal((96, 6, 384), (c.Dim, c.Depth, c.MlpDim));
        Assert.Equal((micro.Heads, micro.DimHead, 7), (c.Heads, c.DimHead, c.PatchSize)); // from the preset and the 28x28 recipe

        var plain = TrainArgs.Parse().ModelConfig(1, 28, 28, 10);
        Assert.Equal((micro.Dim, micro.Depth, micro.Heads, micro.DimHead, micro.MlpDim),
            (plain.Dim, plain.Depth, plain.Heads, plain.DimHead, plain.MlpDim));
    }

    // `vit bench --profile` breaks down a training step and then an inference forward by kernel
    // category; the inference forward has no backward or optimizer kernels, the step has both.
    [Fact]
    public void BenchProfileBreaksDownTrainingAndInference()
    {
        var stdout = new StringWriter();
        int code = Program.Run(["bench", "--device", "cpu", "--input", "mnist", "--patch", "7", "--dim", "16", "--depth", "1",
            "--heads", "2", "--dim-head", "8", "--mlp-dim", "32", "--batch", "4", "--steps", "1", "--profile"], stdout, new StringWriter());
        Assert.Equal(0, code);
        string text = stdout.ToString();
        int train = text.IndexOf("one training step, by kernel category", StringComparison.Ordinal);
        int infer = text.IndexOf("one inference forward, by kernel category", StringComparison.Ordinal);
        Assert.True(train >= 0 && infer > train, text);
        string trainPart = text[train..infer], inferPart = text[infer..];
        Assert.Contains("  optimizer", trainPart);
        Assert.Contains("AttentionBackward", trainPart);
        Assert.Contains("  matmul", inferPart);
        Assert.DoesNotContain("  optimizer", inferPart);
        Assert.DoesNotContain("Backward", inferPart);
        Assert.Contains("inference ", inferPart);
        // On the CPU backend each part also puts the matmul against the FMA peak measured there and then.
        Assert.Matches(@"matmul at [0-9.]+ GFLOP/s: [0-9]+% of this CPU's FMA peak \([0-9]+ GFLOP/s on [0-9]+ threads", trainPart);
        Assert.Matches(@"matmul at [0-9.]+ GFLOP/s: [0-9]+% of this CPU's FMA peak", inferPart);
    }

    [Theory]
    [InlineData(new[] { "train", "--epochs", "zero" }, "--epochs expects a whole number")]
    [InlineData(new[] { "train", "--epoch", "3" }, "unknown option --epoch")]
    [InlineData(new[] { "train", "--model", "vit-huge" }, "--model must be one of")]
    [InlineData(new[] { "train", "--augment", "crop,rotate" }, "unknown augmentation 'rotate'")]
    [InlineData(new[] { "train", "--lr", "-1" }, "--lr must be between")]
    [InlineData(new[] { "train", "--crop-padding", "-2" }, "--crop-padding must be between")]
    [InlineData(new[] { "train", "--heads", "0" }, "--heads must be between")]
    [InlineData(new[] { "bench", "--dim", "0" }, "--dim must be between")]
    [InlineData(new[] { "train", "--resume", "/nonexistent/run" }, "does not exist")]
    [InlineData(new[] { "eval", "--checkpoint", "/nonexistent.safetensors" }, "does not exist")]
    [InlineData(new[] { "eval" }, "--checkpoint is required")]
    [InlineData(new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    [InlineData(new[] { "kernels", "ptx", "--arch", "sm_75", "--out", "/tmp/x" }, "--arch must be one of")]
    public void BadInputGivesOneLineErrorAndExitCode1(string[] args, string expected)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        Assert.Equal(1, code);
        string err = stderr.ToString().TrimEnd();
        Assert.Contains(expected, err);
        Assert.DoesNotContain("\n", err);           // one line
        Assert.DoesNotContain("   at ", err);       // no stack trace
    }

    [Fact]
    public void CorruptCheckpointGivesOneLineError()
    {
        var path = _dir.Combine("corrupt.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var stderr = new StringWriter();
        Assert.Equal(1, Program.Run(["eval", "--checkpoint", path], new StringWriter(), stderr));
        string err = stderr.ToString().TrimEnd();
        Assert.Contains("corrupt.safetensors", err);
        Assert.DoesNotContain("\n", err);
        Assert.DoesNotContain("   at ", err);
    }

    public void Dispose() => _dir.Dispose();
}
