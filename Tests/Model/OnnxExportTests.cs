using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Onnx;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The exported ONNX graph, run in ONNX Runtime, gives our logits: every preset's real widths and
/// heads (depth cut to 2 to stay fast), both poolings, grey and colour input, two batch sizes
/// through one session (the batch dimension is dynamic). Weights are redrawn at scales where
/// every part of the model moves the logits, not the tiny initial ones.
/// </summary>
public sealed class OnnxExportTests : ModelTestBase
{
    private const float Tolerance = 1e-4f;

    public static TheoryData<string, Pooling, int> Cases()
    {
        var data = new TheoryData<string, Pooling, int>();
        foreach (var preset in ViTPresets.All)
            foreach (var pool in new[] { Pooling.Cls, Pooling.Mean })
                foreach (int channels in new[] { 1, 3 })
                    data.Add(preset.Name, pool, channels);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OnnxRuntimeComputesOurLogits(string preset, Pooling pool, int channels)
    {
        int size = channels == 1 ? 28 : 32; // Fashion-MNIST and CIFAR shapes: 49 and 64 patches
        var config = ViTPresets.Get(preset).WithSizes(depth: 2).ToConfig(channels, size, size, numClasses: 10, pool);
        CheckAgainstOnnxRuntime(config);
    }

    [Fact]
    public void OnnxRuntimeComputesOurLogitsWithoutToOut()
    {
        // One head as wide as the model: vit-pytorch (and ViT) leave to_out out; so must the graph.
        var config = new ViTConfig(ImageSize: 16, PatchSize: 4, NumClasses: 5, Dim: 32, Depth: 2, Heads: 1, MlpDim: 64, DimHead: 32);
        Assert.False(config.ProjectOut);
        CheckAgainstOnnxRuntime(config);
    }

    // test_time_augmentation "flip": the graph's logits are the mean of the model's logits for the
    // images and for their mirror images, computed here from two plain forwards and a mirror by index.
    [Fact]
    public void OnnxRuntimeAveragesTheMirrorImageWithFlip()
    {
        var config = new ViTConfig(ImageSize: 12, PatchSize: 4, NumClasses: 5, Dim: 24, Depth: 2, Heads: 3, MlpDim: 48, Channels: 3, DimHead: 8);
        var vit = new ViT(config, Dev, seed: 7);
        Randomize(vit);
        vit.Eval();
        var bytes = OnnxExporter.Export(vit, Info(config) with { TestTimeAugmentation = "flip" }).ToByteArray();
        using var session = new InferenceSession(bytes);
        Assert.Equal("flip", OnnxModelInfo.FromMetadata(session.ModelMetadata.CustomMetadataMap).TestTimeAugmentation);
        int side = config.ImageSize;
        foreach (int batch in new[] { 1, 3 })
        {
            var images = RandomValues(batch * config.Channels * side * side);
            var mirrored = new float[images.Length];
            for (int i = 0; i < images.Length; i++) mirrored[i] = images[i - i % side + side - 1 - i % side];
            var plain = Logits(vit, ViTScratch.Engine.Tensor.FromArray(Dev, images, batch, config.Channels, side, side));
            var mirror = Logits(vit, ViTScratch.Engine.Tensor.FromArray(Dev, mirrored, batch, config.Channels, side, side));
            var (theirs, shape) = RunOnnx(session, images, batch, config);
            Assert.Equal([batch, config.NumClasses], shape);
            for (int i = 0; i < theirs.Length; i++)
                Assert.True(MathF.Abs((plain[i] + mirror[i]) / 2 - theirs[i]) <= Tolerance, $"logit {i}: {theirs[i]} vs mean of {plain[i]} and {mirror[i]}");
            Assert.True(plain.Zip(mirror, (a, b) => MathF.Abs(a - b)).Max() > 10 * Tolerance, "the mirror image changed nothing: the test cannot tell");
        }
        Assert.Contains("test-time augmentation 'rotate'", Assert.Throws<ViTScratchException>(
            () => OnnxExporter.Export(vit, Info(config) with { TestTimeAugmentation = "rotate" })).Message);
    }

    [Fact]
    public void MetadataAndSignatureRoundTripThroughOnnxRuntime()
    {
        var config = new ViTConfig(ImageSize: 8, PatchSize: 4, NumClasses: 3, Dim: 16, Depth: 1, Heads: 2, MlpDim: 32, Pool: Pooling.Mean, Channels: 3, DimHead: 8);
        var vit = new ViT(config, Dev, seed: 3);
        var info = new OnnxModelInfo(["cat, striped", "dog \"good\"", "Ünïcode/ключ"], [0.4914f, 0.4822f, 0.4465f], [0.2470f, 0.2435f, 0.2616f], "my-pets");
        var bytes = OnnxExporter.Export(vit, info).ToByteArray();

        using var session = new InferenceSession(bytes);
        var meta = session.ModelMetadata;
        var read = OnnxModelInfo.FromMetadata(meta.CustomMetadataMap);
        Assert.Equal(info.ClassNames, read.ClassNames);
        Assert.Equal(info.Mean, read.Mean);  // exact: "R" formatting round-trips floats
        Assert.Equal(info.Std, read.Std);
        Assert.Equal("my-pets", read.Dataset);
        Assert.Equal("none", read.TestTimeAugmentation);
        Assert.Equal(config, ViTConfig.FromMetadata(meta.CustomMetadataMap));
        Assert.Equal("ViTScratch", meta.ProducerName);

        var input = session.InputMetadata[OnnxExporter.InputName];
        Assert.Equal([-1, 3, 8, 8], input.Dimensions);
        Assert.Equal(OnnxExporter.BatchDim, input.SymbolicDimensions[0]);
        Assert.Equal(typeof(float), input.ElementType);
        var output = session.OutputMetadata[OnnxExporter.OutputName];
        Assert.Equal([-1, 3], output.Dimensions);
        Assert.Single(session.InputMetadata);
        Assert.Single(session.OutputMetadata);
    }

    [Fact]
    public void GraphUsesOnlyStandardOpsetSeventeenOps()
    {
        var config = new ViTConfig(ImageSize: 8, PatchSize: 4, NumClasses: 3, Dim: 16, Depth: 2, Heads: 2, MlpDim: 32, DimHead: 8, Dropout: 0.1f, EmbDropout: 0.1f, PatchDropout: 0.5f);
        var vit = new ViT(config, Dev, seed: 3);
        var bytes = OnnxExporter.Export(vit, Info(config)).ToByteArray();
        var proto = global::Onnx.ModelProto.Parser.ParseFrom(bytes);

        Assert.Equal(OnnxExporter.IrVersion, proto.IrVersion);
        var opset = Assert.Single(proto.OpsetImport);
        Assert.Equal("", opset.Domain);
        Assert.Equal(17, opset.Version);
        var ops = proto.Graph.Node.Select(n => n.OpType).ToHashSet();
        Assert.Subset(new HashSet<string> { "Reshape", "Transpose", "LayerNormalization", "MatMul", "Add", "Shape", "Concat", "Expand",
            "Split", "Mul", "Softmax", "Erf", "Gather", "Gemm" }, ops);
        Assert.All(proto.Graph.Node, n => Assert.Equal("", n.Domain));
        Assert.Contains("Erf", ops);                 // exact GELU, not the tanh approximation
        Assert.DoesNotContain("Dropout", ops);       // evaluation mode: dropout and patch dropout are gone
        Assert.Equal(2, proto.Graph.Node.Count(n => n.OpType == "Softmax"));
        // Every parameter is there, under its vit-pytorch name (transposed MatMul weights get ".T").
        var initializers = proto.Graph.Initializer.Select(t => t.Name).ToHashSet();
        Assert.All(vit.NamedParameters(), p => Assert.True(initializers.Contains(p.Name) || initializers.Contains(p.Name + ".T"), p.Name));
    }

    [Fact]
    public void MismatchedModelInfoIsRefused()
    {
        var config = new ViTConfig(ImageSize: 8, PatchSize: 4, NumClasses: 3, Dim: 16, Depth: 1, Heads: 2, MlpDim: 32, Channels: 1, DimHead: 8);
        var vit = new ViT(config, Dev);
        Assert.Contains("class names", Assert.Throws<ViTScratchException>(() => OnnxExporter.Export(vit, new OnnxModelInfo(["a", "b"], [0f], [1f]))).Message);
        Assert.Contains("normalisation", Assert.Throws<ViTScratchException>(() => OnnxExporter.Export(vit, new OnnxModelInfo(["a", "b", "c"], [0f, 0f, 0f], [1f, 1f, 1f]))).Message);
        Assert.Contains("positive", Assert.Throws<ViTScratchException>(() => OnnxExporter.Export(vit, new OnnxModelInfo(["a", "b", "c"], [0f], [0f]))).Message);
    }

    private void CheckAgainstOnnxRuntime(ViTConfig config)
    {
        var vit = new ViT(config, Dev, seed: 11);
        Randomize(vit);
        vit.Eval();
        var bytes = OnnxExporter.Export(vit, Info(config)).ToByteArray();
        using var session = new InferenceSession(bytes);
        foreach (int batch in new[] { 1, 3 })
        {
            var images = RandomValues(batch * config.Channels * config.ImageSize * config.ImageSize);
            var ours = Logits(vit, ViTScratch.Engine.Tensor.FromArray(Dev, images, batch, config.Channels, config.ImageSize, config.ImageSize));
            var (theirs, shape) = RunOnnx(session, images, batch, config);
            Assert.Equal([batch, config.NumClasses], shape);
            // Guard against a comparison that passes because everything is near zero.
            Assert.True(ours.Max(MathF.Abs) > 0.5f, $"logits too small to compare: max |logit| {ours.Max(MathF.Abs)}");
            float worst = ours.Zip(theirs, (a, b) => MathF.Abs(a - b)).Max();
            Assert.True(worst <= Tolerance, $"{ShapeOf.Format([batch, config.NumClasses])}: max |ours - onnxruntime| = {worst:G3} > {Tolerance}");
        }
    }

    /// <summary>Logits and their shape from an ONNX Runtime session of an exported model.</summary>
    internal static (float[] Logits, int[] Shape) RunOnnx(InferenceSession session, float[] images, int batch, ViTConfig c)
    {
        var input = new DenseTensor<float>(images, [batch, c.Channels, c.ImageSize, c.ImageSize]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxExporter.InputName, input)]);
        var logits = results.Single(r => r.Name == OnnxExporter.OutputName).AsTensor<float>();
        return (logits.ToArray(), logits.Dimensions.ToArray());
    }

    internal static OnnxModelInfo Info(ViTConfig c) =>
        new(Enumerable.Range(0, c.NumClasses).Select(i => $"class {i}").ToArray(), Enumerable.Repeat(0.5f, c.Channels).ToArray(), Enumerable.Repeat(0.25f, c.Channels).ToArray());

    // Linear weights ~ U with variance 1/in (activations keep their size through the layers),
    // biases and LayerNorm shifts ±0.2, LayerNorm gains 1 ± 0.2, cls and positions ±0.5.
    private void Randomize(ViT vit)
    {
        foreach (var (name, p) in vit.NamedParameters())
        {
            int n = p.Length;
            double scale = name.EndsWith(".bias", StringComparison.Ordinal) ? 0.2
                : p.Shape.Length == 2 ? Math.Sqrt(3.0 / p.Shape[1])
                : name is "cls_token" or "pos_embedding" ? 0.5
                : 0.2; // LayerNorm weight: around 1
            var v = RandomValues(n, scale);
            if (p.Init == ParameterInit.Ones)
                for (int i = 0; i < n; i++) v[i] += 1f;
            p.Value.CopyFrom(v);
        }
    }
}
