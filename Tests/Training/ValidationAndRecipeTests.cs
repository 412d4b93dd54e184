using System.Text.Json;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// Choices on validation, the test split measured once: the stratified, seeded split; best.safetensors
/// chosen on val; result.json; and the named recipes, resolved and overridable, the CIFAR one run
/// for an epoch on synthetic CIFAR files through the real download, checksum and reader.
/// </summary>
public class ValidationAndRecipeTests : IDisposable
{
    private readonly TempDir _dir = new();

    [Theory]
    [InlineData(0.1, 0)]
    [InlineData(0.25, 7)]
    public void TheSplitIsStratifiedDisjointCompleteAndSeeded(double fraction, int seed)
    {
        var data = DataTestUtil.RandomDataset(503, 1, 3, 3, 7, seed: 11);
        var (train, val) = ValidationSplit.Split(data, fraction, seed);
        Assert.NotNull(val);
        for (int c = 0; c < 7; c++)
        {
            int n = data.Labels.Count(l => l == c);
            Assert.Equal((int)Math.Round(fraction * n, MidpointRounding.AwayFromZero), val.Labels.Count(l => l == c));
            Assert.Equal(n - val.Labels.Count(l => l == c), train.Labels.Count(l => l == c));
        }
        // Every image lands in exactly one part: the multisets of (label, pixels) add up to the data's.
        static string Key(ImageDataset d, int i) => d.Labels[i] + ":" + Convert.ToHexString(d.Image(i));
        var all = Enumerable.Range(0, data.Count).Select(i => Key(data, i)).Order().ToList();
        var parts = Enumerable.Range(0, train.Count).Select(i => Key(train, i)).Concat(Enumerable.Range(0, val.Count).Select(i => Key(val, i))).Order().ToList();
        Assert.Equal(all, parts);

        var again = ValidationSplit.Split(data, fraction, seed).Val!;
        Assert.Equal(val.Fingerprint(), again.Fingerprint());
        Assert.NotEqual(val.Fingerprint(), ValidationSplit.Split(data, fraction, seed + 1).Val!.Fingerprint());
        Assert.Same(data, ValidationSplit.Split(data, 0, seed).Train);
    }

    [Fact]
    public void ASplitThatLeavesNothingIsAnError()
    {
        var tiny = DataTestUtil.RandomDataset(3, 1, 2, 2, 3, seed: 1); // one image per class: 10% rounds to none
        Assert.Contains("no validation image", Assert.Throws<ViTScratchException>(() => ValidationSplit.Split(tiny, 0.1, 0)).Message);
    }

    [Fact]
    public void BestIsChosenOnValidationAndTheTestSplitIsMeasuredOnceAtTheEnd()
    {
        TinyFashionMnist.Write(_dir.Combine("data"));
        var o = new TrainOptions
        {
            Dataset = "fashion-mnist", DataDir = _dir.Combine("data"), Model = "vit-micro", Patch = 7, Epochs = 4, BatchSize = 16,
            Lr = 3e-3f, Device = "cpu", Workers = 1, ValSplit = 0.25f, OutDir = _dir.Combine("run"),
        };
        using var trainer = new Trainer(o, TextWriter.Null);
        Assert.True(trainer.Run(CancellationToken.None));
        var m = trainer.Metrics;
        Assert.All(m, r => Assert.True(r.HasVal && !r.HasTest)); // no test figure during training
        var chosen = m.MaxBy(r => r.ValAccuracy)!;

        var best = SafeTensors.Read(_dir.Combine("run", "best.safetensors"));
        Assert.Equal(chosen.Epoch, TrainingCheckpoint.ReadPosition(best, "best").Epoch); // the checkpoint saved after that epoch

        var result = TestResult.FromJson(File.ReadAllText(_dir.Combine("run", "result.json")), "result.json");
        Assert.Equal((chosen.Epoch, "val", chosen.ValAccuracy, 40), (result.Epoch, result.SelectedOn, result.ValAccuracy, result.Images));
        Assert.Equal(result, trainer.FinalTest);

        // It is the test accuracy of best.safetensors: `vit eval` measures the same.
        var stdout = new StringWriter();
        Assert.Equal(0, Program.Run(["eval", "--checkpoint", _dir.Combine("run", "best.safetensors"), "--device", "cpu"], stdout, new StringWriter()));
        Assert.Contains($"accuracy {result.TestAccuracy * 100:F2}%", stdout.ToString());
    }

    // --val-every N validates every N-th epoch, each unmasked epoch and the last: here epochs 3
    // (the 3rd), 4 (unmasked) and 5 (unmasked, the last) of 5, not 1 and 2. Validation draws no
    // random numbers, so the training is the every-epoch run's, bit for bit, and so are the
    // validated epochs' figures; best.safetensors is the best of the validated epochs, and the
    // epochs in between have no val figure in metrics.csv (an empty cell) or the curves.
    [Fact]
    public void ValEveryValidatesEveryNthEpochTheUnmaskedOnesAndTheLast()
    {
        TinyFashionMnist.Write(_dir.Combine("data"));
        var o = new TrainOptions
        {
            Dataset = "fashion-mnist", DataDir = _dir.Combine("data"), Model = "vit-micro", Patch = 7, Epochs = 5, BatchSize = 16,
            Lr = 3e-3f, Device = "cpu", Workers = 1, ValSplit = 0.25f, PatchDropout = 0.5f, UnmaskedEpochs = 2, EvalTest = "never",
        };
        Assert.Equal([2, 3, 4], Enumerable.Range(0, 5).Where((o with { ValEvery = 3 }).ValidatesAfter));
        Assert.Equal([1, 3, 4], Enumerable.Range(0, 5).Where((o with { ValEvery = 2, UnmaskedEpochs = 0 }).ValidatesAfter));
        Assert.Equal([0, 1, 2, 3, 4], Enumerable.Range(0, 5).Where(o.ValidatesAfter)); // the default, 1

        IReadOnlyList<EpochMetrics> Run(TrainOptions options)
        {
            using var trainer = new Trainer(options, TextWriter.Null,
                observer: new ConsoleTrainingObserver(TextWriter.Null, options.OutDir, "test")); // it draws curves.png
            Assert.True(trainer.Run(CancellationToken.None));
            return trainer.Metrics.ToList();
        }
        var every = Run(o with { OutDir = _dir.Combine("every") });
        var sparse = Run(o with { ValEvery = 3, OutDir = _dir.Combine("sparse") });

        Assert.Equal([3, 4, 5], sparse.Where(r => r.HasVal).Select(r => r.Epoch));
        Assert.Equal(every.Select(r => r.TrainLoss), sparse.Select(r => r.TrainLoss));
        Assert.Equal(every.Where(r => r.Epoch >= 3).Select(r => (r.ValLoss, r.ValAccuracy)), sparse.Where(r => r.HasVal).Select(r => (r.ValLoss, r.ValAccuracy)));
        var chosen = sparse.Where(r => r.HasVal).MaxBy(r => r.ValAccuracy)!;
        Assert.Equal(chosen.Epoch, TrainingCheckpoint.ReadPosition(SafeTensors.Read(_dir.Combine("sparse", "best.safetensors")), "best").Epoch);
        var csv = File.ReadAllLines(_dir.Combine("sparse", "metrics.csv"));
        int valColumn = Array.IndexOf(csv[0].Split(','), "val_acc");
        Assert.Equal(["", "", "x", "x", "x"], csv.Skip(1).Select(l => l.Split(',')[valColumn] == "" ? "" : "x"));
        Assert.True(new FileInfo(_dir.Combine("sparse", "curves.png")).Length > 1000);
    }

    [Fact]
    public void ARecipeSetsEveryDefaultAndEachFlagOverridesItsPart()
    {
        TrainOptions Parse(params string[] args) => TrainArgs.Parse(args);
        var quick = Parse();
        Assert.Equal(("fmnist-quick", "fashion-mnist", "vit-micro", 7, 32, 0.5f, 0.1f, "end"),
            (quick.Recipe, quick.Dataset, quick.Model, quick.Patch, quick.Epochs, quick.PatchDropout, quick.ValSplit, quick.EvalTest));

        var best = Parse("--recipe", "fmnist-best", "--epochs", "50", "--val-split", "0.2");
        Assert.Equal(Recipes.FmnistBest.Defaults with { Epochs = 50, ValSplit = 0.2f, Recipe = "fmnist-best", OutDir = best.OutDir, Device = "auto", Workers = 2 },
            best);

        var cifar = Parse("--recipe", "cifar10-gpu");
        Assert.Equal(("cifar10", "vit-small", 4, 200, "crop,flip,randaugment"), (cifar.Dataset, cifar.Model, cifar.Patch, cifar.Epochs, cifar.Augment));
        Assert.Equal("cifar100-gpu", Parse("--dataset", "cifar100").Recipe);
        var overridden = Parse("--recipe", "cifar10-gpu", "--dataset", "cifar100");
        Assert.Equal(("cifar10-gpu", "cifar100", 200), (overridden.Recipe, overridden.Dataset, overridden.Epochs));

        var err = new StringWriter();
        Assert.Equal(1, Program.Run(["train", "--recipe", "fmnist-huge"], new StringWriter(), err));
        Assert.Contains("--recipe must be one of", err.ToString());
    }

    // fmnist-best judges validation and test with the flip it trains with; an --augment without
    // flips (or a dataset default without them) takes the flip at evaluation away too, unless --tta
    // is given.
    [Fact]
    public void ARecipesFlipAtEvaluationFollowsItsFlipsInTraining()
    {
        Assert.Equal("flip", TrainArgs.Parse("--recipe", "fmnist-best").Tta);
        Assert.Equal("none", TrainArgs.Parse("--recipe", "fmnist-best", "--augment", "none").Tta);
        Assert.Equal("none", TrainArgs.Parse("--recipe", "fmnist-best", "--augment", "default").Tta); // Fashion-MNIST's default: no flips
        Assert.Equal("flip", TrainArgs.Parse("--recipe", "fmnist-best", "--augment", "crop,flip").Tta);
        Assert.Equal("flip", TrainArgs.Parse("--recipe", "fmnist-best", "--augment", "none", "--tta", "flip").Tta); // asked for
        Assert.Equal("none", TrainArgs.Parse("--recipe", "fmnist-quick").Tta);
    }

    // fmnist-best ends with unmasked epochs; they belong to its patch dropout and schedule, so a
    // user who turns patch dropout off or shortens the run gets a valid run, not an error about a
    // flag they never gave. An explicit --unmasked-epochs is still checked as given.
    [Fact]
    public void ARecipesUnmaskedEpochsFollowItsPatchDropoutAndLength()
    {
        int recipeTail = Recipes.FmnistBest.Defaults.UnmaskedEpochs;
        float recipeLr = Recipes.FmnistBest.Defaults.UnmaskedLr;
        Assert.True(recipeTail > 1 && recipeLr > 0);
        Assert.Equal((recipeTail, recipeLr), (TrainArgs.Parse("--recipe", "fmnist-best").UnmaskedEpochs, TrainArgs.Parse("--recipe", "fmnist-best").UnmaskedLr));
        var unmaskedOff = TrainArgs.Parse("--recipe", "fmnist-best", "--patch-dropout", "0");
        Assert.Equal((0, 0f), (unmaskedOff.UnmaskedEpochs, unmaskedOff.UnmaskedLr)); // the restart goes with the epochs it restarts
        Assert.Equal(0f, TrainArgs.Parse("--recipe", "fmnist-best", "--unmasked-epochs", "0").UnmaskedLr);
        Assert.Contains("--unmasked-lr", Assert.Throws<ViTScratchException>(() =>
            TrainArgs.Parse("--recipe", "fmnist-best", "--unmasked-epochs", "0", "--unmasked-lr", "0.001")).Message);
        Assert.Equal(recipeTail - 1, TrainArgs.Parse("--recipe", "fmnist-best", "--epochs", $"{recipeTail - 1}").UnmaskedEpochs);
        Assert.Equal(2, TrainArgs.Parse("--recipe", "fmnist-best", "--unmasked-epochs", "2").UnmaskedEpochs);
        var e = Assert.Throws<ViTScratchException>(() => TrainArgs.Parse("--recipe", "fmnist-best", "--patch-dropout", "0", "--unmasked-epochs", "2"));
        Assert.Contains("--unmasked-epochs 2", e.Message);
        e = Assert.Throws<ViTScratchException>(() => TrainArgs.Parse("--recipe", "fmnist-best", "--epochs", "3", "--unmasked-epochs", "5"));
        Assert.Contains("at most --unmasked-epochs 3", e.Message);
    }

    // Item 4 of the recipes issue, as far as no CIFAR-10 copy can be fetched here: the cifar10-gpu
    // recipe (its augmentation, split and schedule; a small model) for one epoch on synthetic
    // CIFAR-10 files served over loopback, downloaded, MD5-checked, extracted and read for real.
    [Fact]
    public void TheCifar10RecipeTrainsAnEpochOnSyntheticCifarFilesThroughTheRealReader()
    {
        var rng = new Random(3);
        var files = new List<(string, byte[])>();
        for (int f = 1; f <= 5; f++)
        {
            var labels = Enumerable.Range(0, 40).Select(i => new[] { (byte)(i % 10) }).ToArray();
            files.Add(($"cifar-10-batches-bin/data_batch_{f}.bin", DataTestUtil.CifarRecords(rng, labels, out _)));
        }
        files.Add(("cifar-10-batches-bin/test_batch.bin", DataTestUtil.CifarRecords(rng, Enumerable.Range(0, 30).Select(i => new[] { (byte)(i % 10) }).ToArray(), out _)));
        byte[] archive = DataTestUtil.TarGz(files);
        using var server = new LoopbackHttpServer();
        server.Serve("cifar-10-binary.tar.gz", new(200, archive));
        var data = new DatasetOptions
        {
            CacheDir = _dir.Combine("cache"), SystemDirs = [], Progress = null, GetEnvironment = _ => null,
            Url = server.Url("cifar-10-binary.tar.gz"), ExpectedMd5 = DataTestUtil.Md5(archive),
        };
        var o = TrainArgs.Parse("--recipe", "cifar10-gpu", "--epochs", "1", "--batch", "32", "--device", "cpu",
            "--dim", "32", "--depth", "1", "--heads", "2", "--dim-head", "16", "--mlp-dim", "64", "--out", _dir.Combine("cifar"));
        var log = new StringWriter();
        using (var trainer = new Trainer(o, log, data))
            Assert.True(trainer.Run(CancellationToken.None));
        string text = log.ToString();
        Assert.Contains("cifar10: 180 train / 20 val / 30 test images, 32x32x3", text);
        Assert.Contains("augment crop,flip,randaugment", text);
        using var config = JsonDocument.Parse(File.ReadAllText(_dir.Combine("cifar", "config.json")));
        Assert.Equal("cifar10-gpu", config.RootElement.GetProperty("Recipe").GetString());
        Assert.True(File.Exists(_dir.Combine("cifar", "result.json")));
    }

    public void Dispose() => _dir.Dispose();
}
