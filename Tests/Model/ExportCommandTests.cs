using Microsoft.ML.OnnxRuntime;
using ViTScratch.Model;
using ViTScratch.Onnx;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Data;

namespace ViTScratch.Tests.Model;

/// <summary>`vit export` end to end, in process: the file it writes and its one-line refusals.</summary>
public sealed class ExportCommandTests : ModelTestBase
{
    private readonly TempDir _dir = new();

    // A Fashion-MNIST-shaped model saved as a training run would, with its options in the metadata.
    private (string Path, ViT Model) Checkpoint(string dataset = "fashion-mnist", bool recordDataset = true)
    {
        var info = DatasetCatalog.Info(dataset);
        var config = ViTPresets.Micro.WithSizes(depth: 1).ToConfig(info.Channels, info.Height, info.Width, info.ClassCount, Pooling.Mean);
        var vit = new ViT(config, Dev, seed: 5);
        string path = _dir.Combine($"{dataset}-{recordDataset}.safetensors");
        vit.Save(path, recordDataset ? new Dictionary<string, string> { ["train_options"] = new TrainOptions { Dataset = dataset }.ToJson() } : null);
        return (path, vit);
    }

    private static (int Code, string Stdout, string Stderr) Vit(params string[] args)
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void ExportsARunnableModelWithItsDatasetsClassesAndNormalisation()
    {
        var (ckpt, vit) = Checkpoint("cifar10");
        string onnx = _dir.Combine("model.onnx");
        var (code, stdout, stderr) = Vit("export", "--checkpoint", ckpt, "--out", onnx);
        Assert.True(code == 0, stderr);
        Assert.Contains("opset 17", stdout);

        using var session = new InferenceSession(onnx);
        var info = OnnxModelInfo.FromMetadata(session.ModelMetadata.CustomMetadataMap);
        Assert.Equal(DatasetInfo.Cifar10.ClassNames, info.ClassNames);
        Assert.Equal(DatasetInfo.Cifar10.Mean, info.Mean);
        Assert.Equal(DatasetInfo.Cifar10.Std, info.Std);
        Assert.Equal("cifar10", info.Dataset);

        vit.Eval();
        var c = vit.Config;
        var images = RandomValues(2 * c.Channels * c.ImageSize * c.ImageSize);
        var ours = Logits(vit, ViTScratch.Engine.Tensor.FromArray(Dev, images, 2, c.Channels, c.ImageSize, c.ImageSize));
        var (theirs, _) = OnnxExportTests.RunOnnx(session, images, 2, c);
        Assert.True(ours.Zip(theirs, (a, b) => MathF.Abs(a - b)).Max() <= 1e-4f);
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp")); // the atomic write left nothing behind
    }

    [Fact]
    public void AWeightsOnlyFileNeedsDataset()
    {
        var (ckpt, _) = Checkpoint(recordDataset: false);
        string onnx = _dir.Combine("m.onnx");
        var (code, _, stderr) = Vit("export", "--checkpoint", ckpt, "--out", onnx);
        AssertOneLineError(code, stderr, "--dataset");
        Assert.False(File.Exists(onnx));

        Assert.Equal(0, Vit("export", "--checkpoint", ckpt, "--out", onnx, "--dataset", "fashion-mnist").Code);
        using var session = new InferenceSession(onnx);
        Assert.Equal(DatasetInfo.FashionMnist.ClassNames, OnnxModelInfo.FromMetadata(session.ModelMetadata.CustomMetadataMap).ClassNames);

        // A dataset of another shape is refused, naming both.
        AssertOneLineError(Vit("export", "--checkpoint", ckpt, "--out", onnx, "--force", "--dataset", "cifar10"), "cifar10");
    }

    [Fact]
    public void AnExistingOutputIsKeptUnlessForced()
    {
        var (ckpt, _) = Checkpoint();
        string onnx = _dir.Combine("keep.onnx");
        File.WriteAllText(onnx, "precious");
        AssertOneLineError(Vit("export", "--checkpoint", ckpt, "--out", onnx), "--force");
        Assert.Equal("precious", File.ReadAllText(onnx));

        Assert.Equal(0, Vit("export", "--checkpoint", ckpt, "--out", onnx, "--force").Code);
        using var session = new InferenceSession(onnx);
        Assert.Equal("ViTScratch", session.ModelMetadata.ProducerName);
    }

    [Fact]
    public void BadInputIsOneLine()
    {
        var (ckpt, _) = Checkpoint();
        AssertOneLineError(Vit("export", "--checkpoint", _dir.Combine("missing.safetensors"), "--out", _dir.Combine("a.onnx")), "does not exist");

        string corrupt = _dir.Combine("corrupt.safetensors");
        File.WriteAllBytes(corrupt, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        AssertOneLineError(Vit("export", "--checkpoint", corrupt, "--out", _dir.Combine("b.onnx")), "corrupt.safetensors");

        // A parent that is a file: no directory can be made there.
        string notADir = _dir.Combine("plain-file");
        File.WriteAllText(notADir, "x");
        AssertOneLineError(Vit("export", "--checkpoint", ckpt, "--out", Path.Combine(notADir, "m.onnx")), "cannot write");

        AssertOneLineError(Vit("export", "--checkpoint", ckpt, "--out", _dir.Path), "is a directory");
        AssertOneLineError(Vit("export", "--checkpoint", ckpt), "--out");
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.onnx"));
    }

    private static void AssertOneLineError((int Code, string Stdout, string Stderr) run, string expected) =>
        AssertOneLineError(run.Code, run.Stderr, expected);

    private static void AssertOneLineError(int code, string stderr, string expected)
    {
        Assert.Equal(Program.ExitUserError, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected, line);
    }

    public override void Dispose()
    {
        _dir.Dispose();
        base.Dispose();
    }
}
