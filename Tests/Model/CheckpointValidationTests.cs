using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Model;

/// <summary>
/// A checkpoint's metadata is checked against its own tensors before a model is built, every
/// config field is bounded, non-finite weights are refused, and the resume state (position and
/// optimizer) is range-checked, each with one line naming the file.
/// </summary>
public class CheckpointValidationTests : ModelTestBase
{
    private const string Source = "/runs/x/last.safetensors";

    /// <summary>A successful load of the fixture allocates well under 1 MB; this leaves room without letting a model of 10+ MB through.</summary>
    private const long AllocationBound = 4 << 20;

    private readonly byte[] _good;

    public CheckpointValidationTests() => _good = CheckpointFixture.TrainingCheckpointBytes(Dev);

    private ViT Load(byte[] bytes) => TrainingCheckpoint.LoadModel(SafeTensors.Parse(bytes, Source), Source, Dev);

    private static byte[] WithMeta(byte[] bytes, params (string Key, string Value)[] edits) =>
        CheckpointFixture.Edit(bytes, metadata: m => { foreach (var (k, v) in edits) m[k] = v; });

    /// <summary>Loading fails with one line naming the file and containing <paramref name="expected"/>, and allocates little.</summary>
    private ViTScratchException AssertRejectedCheaply(byte[] bytes, params string[] expected)
    {
        ViTScratchException? e = null;
        long allocated = CheckpointFixture.AllocatedBy(() => e = Assert.Throws<ViTScratchException>(() => Load(bytes)));
        Assert.True(allocated < AllocationBound, $"the failed load allocated {allocated:N0} bytes: '{e!.Message}'");
        AssertOneLine(e!, expected);
        return e!;
    }

    private static void AssertOneLine(ViTScratchException e, params string[] expected)
    {
        Assert.Contains(Source, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        foreach (var s in expected) Assert.Contains(s, e.Message);
    }

    [Fact]
    public void TheFixtureLoads()
    {
        var model = Load(_good);
        Assert.Equal(CheckpointFixture.Config, model.Config);
        var file = SafeTensors.Parse(_good, Source);
        Assert.Equal(CheckpointFixture.Position, TrainingCheckpoint.ReadPosition(file, Source));
        TrainingCheckpoint.LoadOptimizer(file, CheckpointFixture.Optimizer(model));
    }

    // ---- metadata against the tensor table, before the model is built ----------------------------

    [Fact]
    public void HugeDepthClaimFailsBeforeTheModelIsBuilt()
    {
        // Depth 12 at width 1024 would be 150M parameters (600 MB, and as much again for gradients).
        var bytes = WithMeta(_good, ("depth", "12"), ("dim", "1024"), ("mlp_dim", "4096"), ("heads", "16"), ("dim_head", "64"));
        AssertRejectedCheaply(bytes, "depth = 12", "stores 2 transformer layers");
    }

    [Fact]
    public void DepthOffByOneIsNamed() => AssertRejectedCheaply(WithMeta(_good, ("depth", "3")), "depth = 3", "stores 2");

    [Theory]
    [InlineData("dim", "65536", "'cls_token'")]
    [InlineData("num_classes", "1000000", "'mlp_head.weight'")]
    [InlineData("mlp_dim", "1048576", "'transformer.layers.0.1.net.1.weight'")]
    [InlineData("heads", "1024", "'transformer.layers.0.0.to_qkv.weight'")]
    [InlineData("dim_head", "65536", "'transformer.layers.0.0.to_qkv.weight'")]
    [InlineData("channels", "1024", "'to_patch_embedding.2.weight'")]
    [InlineData("image_size", "1000", "'pos_embedding'")]
    public void EachFieldIsCheckedAgainstItsTensor(string key, string value, string tensor) =>
        AssertRejectedCheaply(WithMeta(_good, (key, value)), $"{key} = {value}", tensor, "does not match its weights");

    [Fact]
    public void ParameterCountIsCheckedWhenEveryShapeMatches()
    {
        // One head of the model's width has no to_out; its qkv has the same shape as 2 heads of 4,
        // so only the count tells that a config with to_out needs more values than the file has.
        var meta = SafeTensors.Parse(_good).Metadata;
        var bytes = CheckpointFixture.WeightsOf(CheckpointFixture.Config with { Heads = 1, DimHead = 8 }, Dev, meta);
        AssertRejectedCheaply(bytes, "1810 parameters", "stores 1666 values");
    }

    [Theory]
    [InlineData("depth", "99999999999", "not a whole number")]
    [InlineData("depth", "1025", "at most 1024")]
    [InlineData("image_size", "8200", "at most 8192")]
    [InlineData("dim", "-8", "at least 1")]
    [InlineData("dropout", "NaN", "dropout NaN")]
    [InlineData("emb_dropout", "Infinity", "emb_dropout")]
    [InlineData("patch_dropout", "-0.5", "patch_dropout")]
    [InlineData("pool", "max\nmean", "'max\\nmean'")]
    public void ConfigFieldsAreBounded(string key, string value, string expected) =>
        AssertRejectedCheaply(WithMeta(_good, (key, value)), expected);

    [Fact]
    public void DerivedSizesAreBoundedWithoutOverflow()
    {
        var c = CheckpointFixture.Config;
        // (8192/1)² tokens, 8192²·1024 values per patch and 1024·65536 q/k/v would all overflow int.
        Assert.Contains("patches", Assert.Throws<ViTScratchException>(() => (c with { ImageSize = 8192, PatchSize = 1 }).Validate()).Message);
        Assert.Contains("values", Assert.Throws<ViTScratchException>(() => (c with { ImageSize = 8192, PatchSize = 8192, Channels = 1024 }).Validate()).Message);
        Assert.Contains("heads 1024 x dim_head 65536", Assert.Throws<ViTScratchException>(() => (c with { Heads = 1024, DimHead = 65536 }).Validate()).Message);
        Assert.Contains("parameters", Assert.Throws<ViTScratchException>(() => (c with { Dim = 65536, Depth = 1024, MlpDim = 1 << 20 }).Validate()).Message);
    }

    [Fact]
    public void SeedThatIsNotANumberIsAnError() => AssertRejectedCheaply(WithMeta(_good, (ViT.SeedKey, "x")), ViT.SeedKey);

    // ---- non-finite weights ---------------------------------------------------------------------

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "Infinity")]
    [InlineData(float.NegativeInfinity, "-Infinity")]
    public void NonFiniteWeightIsNamed(float value, string shown)
    {
        var bytes = CheckpointFixture.WithValue(_good, "transformer.layers.1.0.to_qkv.weight", 17, value);
        var e = AssertRejectedCheaply(bytes, "'transformer.layers.1.0.to_qkv.weight'", "index 17", "diverged");
        Assert.Contains(shown, e.Message);

        // Loading the weights into an existing model (resume) refuses them too and leaves it unchanged.
        var model = Load(_good);
        var before = model.StateDict();
        var file = SafeTensors.Parse(bytes, Source);
        var modelTensors = file.Tensors.Where(t => !t.Name.StartsWith(TrainingCheckpoint.OptimizerPrefix, StringComparison.Ordinal)).ToList();
        AssertOneLine(Assert.Throws<ViTScratchException>(() => model.LoadStateDict(modelTensors, Source)), "'transformer.layers.1.0.to_qkv.weight'", shown);
        Assert.Equal(before.Select(t => t.Data), model.StateDict().Select(t => t.Data));
    }

    // ---- resume position --------------------------------------------------------------------------

    [Theory]
    [InlineData("epoch", "-1")]
    [InlineData("epoch", "99999999999")]
    [InlineData("batch", "NaN")]
    [InlineData("step", "2.5")]
    [InlineData("correct", "-3")]
    [InlineData("seen", "")]
    [InlineData("loss_sum", "NaN")]
    [InlineData("loss_sum", "-Infinity")]
    [InlineData("loss_sum", "-1")]
    [InlineData("seconds", "Infinity")]
    public void PositionFieldOutOfRangeIsNamed(string key, string value)
    {
        var file = SafeTensors.Parse(WithMeta(_good, (key, value)), Source);
        AssertOneLine(Assert.Throws<ViTScratchException>(() => TrainingCheckpoint.ReadPosition(file, Source)), $"'{key}'", "cannot be resumed");
    }

    [Theory]
    [InlineData("correct", "9", "9 of 8")]        // the fixture has seen 8
    [InlineData("seen", "2", "3 of 2")]
    [InlineData("batch", "5", "batch 5")]         // step 2 < batch 5
    [InlineData("step", "7", "at step 7")]        // the optimizer took 2
    public void InconsistentPositionIsNamed(string key, string value, string expected)
    {
        var file = SafeTensors.Parse(WithMeta(_good, (key, value)), Source);
        AssertOneLine(Assert.Throws<ViTScratchException>(() => TrainingCheckpoint.ReadPosition(file, Source)), expected);
    }

    // ---- optimizer state ----------------------------------------------------------------------------

    private void AssertOptimizerRejected(byte[] bytes, params string[] expected)
    {
        var model = Load(_good);
        var optimizer = CheckpointFixture.Optimizer(model);
        var before = optimizer.SaveState(); // zero moments, unlike the file's
        AssertOneLine(Assert.Throws<ViTScratchException>(() => TrainingCheckpoint.LoadOptimizer(SafeTensors.Parse(bytes, Source), optimizer)), expected);
        // Nothing was copied, not even the tensors before the bad one.
        var after = optimizer.SaveState();
        foreach (var (name, (_, values)) in before) Assert.Equal(values, after[name].Values);
    }

    [Fact]
    public void NonFiniteOptimizerStateIsNamed() =>
        AssertOptimizerRejected(CheckpointFixture.WithValue(_good, "optimizer.adamw.m.mlp_head.bias", 3, float.NaN), "'adamw.m.mlp_head.bias'", "NaN", "index 3");

    [Fact]
    public void NegativeSecondMomentIsNamed() =>
        AssertOptimizerRejected(CheckpointFixture.WithValue(_good, "optimizer.adamw.v.cls_token", 1, -1e-3f), "'adamw.v.cls_token'", "negative");

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(-1f)]
    [InlineData(2.5f)]
    [InlineData(3e9f)]
    public void BadOptimizerStepCountIsAnError(float value) =>
        AssertOptimizerRejected(CheckpointFixture.WithValue(_good, "optimizer.optimizer.step", 0, value), "'optimizer.step'", "whole number");

    [Fact]
    public void OptimizerStepCountOfWrongShapeIsAnError() =>
        AssertOptimizerRejected(CheckpointFixture.Edit(_good, tensor: t => t.Name == "optimizer.optimizer.step" ? t with { Shape = [0], Data = [] } : t), "'optimizer.step'", "[0]");

    [Fact]
    public void OptimizerStateOfWrongShapeIsNamed() =>
        AssertOptimizerRejected(CheckpointFixture.Edit(_good, tensor: t => t.Name == "optimizer.adamw.v.mlp_head.weight" ? t with { Shape = [t.Data.Length] } : t),
            "'adamw.v.mlp_head.weight'", "[80]", "[10, 8]");

    [Fact]
    public void MissingOptimizerStateNamesTheFile()
    {
        var bytes = CheckpointFixture.Edit(_good, metadata: null, tensor: t => t.Name == "optimizer.adamw.m.cls_token" ? t with { Name = "optimizer.other" } : t);
        AssertOptimizerRejected(bytes, "no optimizer state 'adamw.m.cls_token'");
    }

    [Fact]
    public void InvalidUtf8InsideAHeaderStringIsAnError()
    {
        // JsonDocument validates UTF-8 only in the structure; inside a string it fails later, in GetString.
        var bytes = (byte[])_good.Clone();
        int at = System.Text.Encoding.ASCII.GetString(bytes, 0, 2000).IndexOf("cls_token", StringComparison.Ordinal);
        bytes[at] = 0xFF;
        var e = Assert.Throws<ViTScratchException>(() => SafeTensors.Parse(bytes, Source));
        AssertOneLine(e, "UTF-8");
    }

    [Theory]
    [InlineData("{\"__metadata__\":{\"k\":\"\\uD800\"}}")]
    [InlineData("{\"\\uDC00x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}")]
    [InlineData("{\"w\":{\"dtype\":\"F\\uD83D32\",\"shape\":[0],\"data_offsets\":[0,0]}}")]
    public void LoneSurrogateEscapesInTheHeaderAreAnError(string header)
    {
        var json = System.Text.Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        AssertOneLine(Assert.Throws<ViTScratchException>(() => SafeTensors.Parse(bytes, Source)));
    }

    [Theory]
    [InlineData("{\"Dataset\":\"\\uD800\"}")]
    [InlineData("{\"Epochs\":1e99}")]
    [InlineData("[1]")]
    public void UnreadableTrainingOptionsAreAnError(string json)
    {
        var file = SafeTensors.Parse(WithMeta(_good, ("train_options", json)), Source);
        AssertOneLine(Assert.Throws<ViTScratchException>(() => TrainingCheckpoint.ReadOptions(file, Source)), "training options");
    }

    [Fact]
    public void PrintableEscapesControlCharactersAndCutsLongText()
    {
        Assert.Equal("a\\nb\\u0000c", ViTScratchException.Printable("a\nb\0c"));
        string cut = ViTScratchException.Printable(new string('x', 1000), 10);
        Assert.StartsWith("xxxxxxxxxx...", cut);
        Assert.Contains("1000 characters", cut);
    }
}
