using System.Text.Json.Nodes;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// Resume trusts nothing in the checkpoint it cannot check: the model its metadata describes must
/// be the one its training options build, and the options themselves must be in range.
/// </summary>
public class ResumeValidationTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _last;

    public ResumeValidationTests()
    {
        TinyFashionMnist.Write(_dir.Combine("data"));
        var o = new TrainOptions
        {
            Dataset = "fashion-mnist", DataDir = _dir.Combine("data"), Model = "vit-micro", Patch = 7, Epochs = 2, BatchSize = 32,
            Device = "cpu", Workers = 1, OutDir = _dir.Combine("run"),
        };
        using var cancel = new CancellationTokenSource();
        using var trainer = new Trainer(o, TextWriter.Null);
        trainer.StepCompleted += step => { if (step == 1) cancel.Cancel(); };
        trainer.Run(cancel.Token);
        _last = _dir.Combine("run", "last.safetensors");
    }

    private void EditMetadata(Action<Dictionary<string, string>> edit)
    {
        var file = SafeTensors.Read(_last);
        var meta = new Dictionary<string, string>(file.Metadata);
        edit(meta);
        SafeTensors.Write(_last, file.Tensors, meta);
    }

    private string ResumeError()
    {
        var stderr = new StringWriter();
        Assert.Equal(1, Program.Run(["train", "--resume", _dir.Combine("run"), "--device", "cpu"], new StringWriter(), stderr));
        string err = stderr.ToString().TrimEnd();
        Assert.DoesNotContain("\n", err);
        return err;
    }

    [Fact]
    public void TheUneditedCheckpointResumes()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, Program.Run(["train", "--resume", _dir.Combine("run"), "--device", "cpu"], stdout, new StringWriter()));
    }

    // A checkpoint of a newer vit carries an option this build does not know: resuming would train
    // on without it (an older build, given a run with a weight average, took the average for the
    // weights), so a resume refuses it; an evaluation, which only reads the model, still works.
    [Fact]
    public void AnOptionThisBuildDoesNotKnowIsRefusedByResumeNotByEval()
    {
        EditMetadata(m =>
        {
            var options = JsonNode.Parse(m["train_options"])!.AsObject();
            options["SomeFutureOption"] = 0.5;
            m["train_options"] = options.ToJsonString();
        });
        Assert.Contains("its training options set 'SomeFutureOption', which this build of vit does not know; the run was written by a newer vit", ResumeError());
        Assert.Equal(0, Program.Run(["eval", "--checkpoint", _last, "--device", "cpu"], new StringWriter(), new StringWriter()));
    }

    [Fact]
    public void AModelThatDiffersFromTheOptionsIsRefused()
    {
        EditMetadata(m => m["pool"] = "mean"); // same shapes: the weights alone would load
        Assert.Contains("is not the model its training options build", ResumeError());
    }

    [Theory]
    [InlineData("Epochs", -3)]
    [InlineData("BatchSize", 0)]
    [InlineData("ValSplit", 2)]
    public void OptionsOutOfRangeAreRefused(string key, double value)
    {
        EditMetadata(m =>
        {
            var options = JsonNode.Parse(m["train_options"])!.AsObject();
            options[key] = value;
            m["train_options"] = options.ToJsonString();
        });
        Assert.Contains("the training options are out of range", ResumeError());
    }

    [Fact]
    public void APositionPastTheRunsEndIsRefused()
    {
        EditMetadata(m => m["epoch"] = "7");
        Assert.Contains("past the end of a run of 2 epochs", ResumeError());
    }

    public void Dispose() => _dir.Dispose();
}
