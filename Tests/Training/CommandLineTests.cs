using System.Text.Json;
using ViTScratch.Kernels;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Cli;

namespace ViTScratch.Tests.Training;

/// <summary>
/// `vit`'s command line on System.CommandLine: every flag still spelled as before and listed by
/// --help, a "did you mean" for a mistyped flag or command, response files, tab completion, range
/// errors in one line naming the flag, and --precision reaching the kernels.
/// </summary>
public class CommandLineTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    // Every flag of `vit train` before the move to System.CommandLine, spelled as its old help
    // text spelled it, plus --precision (issue 18): none may be lost or renamed.
    private static readonly string[] TrainFlags =
    [
        "--dataset", "--image-size", "--channels", "--cache-mb", "--strict", "--data", "--download", "--model", "--patch", "--dim",
        "--depth", "--heads", "--dim-head", "--mlp-dim", "--recipe", "--val-split", "--split-seed", "--eval-test", "--pool", "--dropout",
        "--emb-dropout", "--patch-dropout", "--epochs", "--batch", "--opt", "--lr", "--wd", "--momentum", "--nesterov", "--warmup",
        "--min-lr", "--label-smoothing", "--clip", "--augment", "--crop-padding", "--randaugment-n", "--randaugment-m", "--device",
        "--seed", "--workers", "--train-limit", "--test-limit", "--out", "--force", "--resume", "--precision", "--tta",
        "--val-every", "--ema", "--ema-epochs",
    ];

    [Fact]
    public void HelpListsEveryFlagOfTrain()
    {
        var r = InProcessVit.Run("train", "--help");
        Assert.Equal(0, r.Code);
        var listed = r.Out.Split('\n').Select(l => l.TrimStart()).Where(l => l.StartsWith("--", StringComparison.Ordinal))
            .Select(l => l.Split(' ', 2)[0]).ToHashSet();
        foreach (var flag in TrainFlags) Assert.Contains(flag, listed);
        Assert.Contains("cpu always computes in fp32 (the flag is accepted)", r.Out);
        Assert.Contains("--resume <DIR|FILE>", r.Out);

        // The top-level help names every command, and `vit help CMD` is `vit CMD --help`.
        var top = InProcessVit.Run("--help");
        foreach (var command in new[] { "train", "eval", "predict", "export", "bench", "info", "kernels" })
            Assert.Matches($@"\n\s+{command}\b", top.Out);
        Assert.Equal(InProcessVit.Run("bench", "--help").Out, InProcessVit.Run("help", "bench").Out);
    }

    [Theory]
    [InlineData(new[] { "train", "--epoch", "3" }, "vit train: unknown option --epoch; did you mean --epochs?")]
    [InlineData(new[] { "train", "--lrr=0.1" }, "unknown option --lrr; did you mean --lr?")]
    [InlineData(new[] { "bench", "--stpes", "2" }, "vit bench: unknown option --stpes; did you mean --steps?")]
    [InlineData(new[] { "trian" }, "vit: unknown command 'trian'; did you mean train?")]
    public void AMistypedFlagOrCommandGetsASuggestionInOneLine(string[] args, string expected) =>
        InProcessVit.AssertOneLineError(InProcessVit.Run(args), expected);

    [Fact]
    public void NothingCloseGetsNoSuggestion() =>
        Assert.DoesNotContain("did you mean", InProcessVit.Run("train", "--frobnicate").Err);

    [Theory]
    [InlineData(new[] { "train", "--val-split", "0.95" }, "vit train: --val-split must be between 0 and 0.9, got 0.95")]
    [InlineData(new[] { "train", "--workers", "65" }, "--workers must be between 0 and 64, got 65")]
    [InlineData(new[] { "train", "--image-size", "2" }, "--image-size must be between 4 and 1024, got 2")]
    [InlineData(new[] { "train", "--cache-mb", "-1" }, "--cache-mb must be between 0 and")]
    [InlineData(new[] { "train", "--dropout", "NaN" }, "--dropout expects a number, got 'NaN'")]
    [InlineData(new[] { "train", "--precision", "fp16" }, "--precision must be one of fp32, tf32, bf16; got 'fp16'")]
    [InlineData(new[] { "eval", "--checkpoint", "x", "--batch", "0" }, "vit eval: --batch must be between 1 and 65536, got 0")]
    [InlineData(new[] { "bench", "--patch-dropout", "0.99" }, "vit bench: --patch-dropout must be between 0 and 0.95, got 0.99")]
    [InlineData(new[] { "bench", "--steps", "0" }, "vit bench: --steps must be between 1 and 1000, got 0")]
    [InlineData(new[] { "predict", "--checkpoint", "x", "--index", "-1" }, "vit predict: --index must be between 0 and")]
    [InlineData(new[] { "train", "--tta", "rotate" }, "vit train: --tta must be one of none, flip; got 'rotate'")]
    [InlineData(new[] { "train", "--val-every", "0" }, "vit train: --val-every must be between 1 and 100000, got 0")]
    [InlineData(new[] { "eval", "--checkpoint", "x", "--tta", "crop" }, "vit eval: --tta must be one of none, flip; got 'crop'")]
    public void AnOutOfRangeValueGivesOneLineNamingTheFlag(string[] args, string expected) =>
        InProcessVit.AssertOneLineError(InProcessVit.Run(args), expected);

    // The flags' ranges are the library's: the limit a flag reports is the one Validate enforces on
    // options built in code or read from a checkpoint.
    [Fact]
    public void FlagsAndValidateShareOneRuleTable()
    {
        var e = Assert.Throws<ViTScratchException>(() => new TrainOptions { ValSplit = 0.95f }.Validate("config.json"));
        Assert.Equal("config.json: the training options are out of range: ValSplit must be between 0 and 0.9, got 0.95", e.Message);
        Assert.Throws<ViTScratchException>(() => new TrainOptions { Precision = "fp16" }.Validate("x"));
        Assert.Throws<ViTScratchException>(() => new TrainOptions { Tta = "rotate" }.Validate("x"));
        Assert.Equal("flip", TrainArgs.Parse("--tta", "flip").Tta);
        new TrainOptions { Dim = 0, Heads = 0 }.Validate("x"); // 0 in code or a saved run: the preset's size
        InProcessVit.AssertOneLineError(InProcessVit.Run("train", "--dim", "0"), "--dim must be between 1 and 8192, got 0"); // on purpose: an error
    }

    // --unmasked-epochs turns patch dropout off for the last epochs: without patch dropout, or for
    // more epochs than the run has, it is a one-line error naming the flag and the fix.
    [Theory]
    [InlineData("--unmasked-epochs 2 --patch-dropout 0 --epochs 10", "--unmasked-epochs 2 turns patch dropout off for the last epochs, but patch dropout is 0; give --patch-dropout P")]
    [InlineData("--unmasked-epochs 11 --patch-dropout 0.5 --epochs 10", "--unmasked-epochs 11 is more than the run's 10 epochs; give at most --unmasked-epochs 10")]
    [InlineData("--unmasked-epochs -1", "--unmasked-epochs must be between 0 and 100000, got -1")]
    [InlineData("--unmasked-lr 0.0001 --patch-dropout 0.5 --epochs 10", "--unmasked-lr 0.0001 sets the learning rate of the unmasked epochs, but there are none; give --unmasked-epochs N")]
    public void UnmaskedEpochsOutsideTheRunAreOneLine(string flags, string expected) =>
        InProcessVit.AssertOneLineError(InProcessVit.Run(["train", .. flags.Split(' ')]), expected);

    [Fact]
    public void AResponseFileSuppliesFlags()
    {
        string rsp = _dir.Combine("flags.rsp");
        File.WriteAllLines(rsp, ["# a comment line", "--recipe fmnist-best", "--epochs 5", "--lr 0.01", "--augment none"]);
        var o = TrainArgs.Parse("@" + rsp, "--seed", "3");
        Assert.Equal(("fmnist-best", 5, 0.01f, "none", 3), (o.Recipe, o.Epochs, o.Lr, o.Augment, o.Seed));
        Assert.Equal(Recipes.FmnistBest.Defaults.PatchDropout, o.PatchDropout); // the rest from the recipe

        // Through `vit` itself: a bad value inside the file is named as if it had been typed.
        File.WriteAllLines(rsp, ["--epochs 5", "--heads 999"]);
        InProcessVit.AssertOneLineError(InProcessVit.Run("train", "@" + rsp), "vit train: --heads must be between 1 and 256, got 999");
        InProcessVit.AssertOneLineError(InProcessVit.Run("train", "@" + _dir.Combine("missing.rsp")), "missing.rsp");
    }

    [Fact]
    public void TabCompletionOffersFlagsAndTheirValues()
    {
        // What dotnet-suggest asks when the cursor is at the end of the line.
        static string Suggest(string line) => InProcessVit.Run($"[suggest:{line.Length}]", line).Out;
        Assert.Contains("--epochs", Suggest("vit train --ep"));
        Assert.Equal(["auto", "cpu", "cuda", "ilgpu-cpu"], Suggest("vit train --device ").Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("bf16", Suggest("vit bench --precision "));
    }

    [Fact]
    public void OnlyWhereAndHowARunComputesMayChangeOnResume() =>
        InProcessVit.AssertOneLineError(InProcessVit.Run("train", "--resume", _dir.Path, "--epochs", "3"),
            "--epochs cannot be given with --resume", "--precision");

    // Issue 18's switch: the flag lands in TrainOptions (so config.json and the checkpoint carry
    // it) and on the kernels of the device the trainer creates. The ILGPU CPU accelerator keeps
    // the value as the CUDA backend does; the CPU backend reads back fp32, as documented.
    [Theory]
    [InlineData("ilgpu-cpu", "bf16", MathPrecision.Bf16)]
    [InlineData("cpu", "bf16", MathPrecision.Fp32)]
    public void PrecisionReachesTheKernelsOfTheTrainingDevice(string device, string precision, MathPrecision expected)
    {
        TinyFashionMnist.Write(_dir.Combine("data"), train: 40, test: 10);
        var o = TrainArgs.Parse("--data", _dir.Combine("data"), "--device", device, "--precision", precision, "--out", _dir.Combine("run"));
        Assert.Equal(precision, o.Precision);
        Assert.Contains($"\"Precision\": \"{precision}\"", o.ToJson());
        using var trainer = new Trainer(o, TextWriter.Null);
        Assert.Equal(expected, trainer.Model.Device.Kernels.Precision);
    }

    [Fact]
    public void AResumedRunKeepsItsPrecisionUnlessTheFlagChangesIt()
    {
        TinyFashionMnist.Write(_dir.Combine("data"), train: 64, test: 16);
        string run = _dir.Combine("run");
        var o = TrainArgs.Parse("--data", _dir.Combine("data"), "--device", "cpu", "--precision", "bf16", "--epochs", "3", "--batch", "32",
            "--workers", "1", "--out", run);
        using (var cancel = new CancellationTokenSource())
        using (var trainer = new Trainer(o, TextWriter.Null))
        {
            trainer.StepCompleted += step => { if (step == 1) cancel.Cancel(); };
            Assert.False(trainer.Run(cancel.Token));
        }
        string Saved() => JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement.GetProperty("Precision").GetString()!;
        Assert.Equal("bf16", Saved());
        Assert.Equal("bf16", TrainingCheckpointPrecision(Path.Combine(run, "last.safetensors")));

        string copy = _dir.Combine("copy");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(run)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));

        var kept = InProcessVit.Run("train", "--resume", run, "--workers", "1");
        Assert.True(kept.Code == 0, kept.Err);
        Assert.Equal("bf16", TrainingCheckpointPrecision(Path.Combine(run, "last.safetensors")));
        var changed = InProcessVit.Run("train", "--resume", copy, "--precision", "tf32", "--workers", "1");
        Assert.True(changed.Code == 0, changed.Err);
        Assert.Equal("tf32", TrainingCheckpointPrecision(Path.Combine(copy, "last.safetensors")));
    }

    private static string TrainingCheckpointPrecision(string path)
    {
        var file = ViTScratch.Training.Runs.TrainingCheckpoint.Read(path);
        return ViTScratch.Training.Runs.TrainingCheckpoint.ReadOptions(file, path).Precision;
    }
}
