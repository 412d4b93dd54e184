using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The words of each refusal when a model is saved or its weights are loaded (ViT.Save, ViT.Load,
/// LoadStateDict): each names the file and the tensor and says what to do. CheckpointTests and
/// CheckpointValidationTests check that these cases are refused; this pins what the user reads.
/// </summary>
public class StateDictRefusalTests : ModelTestBase
{
    private const string Source = "/runs/s/best.safetensors";

    private static readonly ViTConfig Config = TinyConfig();

    private string Refusal(IReadOnlyList<SafeTensor> tensors)
    {
        var model = new ViT(Config, Dev, seed: 3);
        var before = model.StateDict();
        var message = Assert.Throws<ViTScratchException>(() => model.LoadStateDict(tensors, Source)).Message;
        Assert.Equal(before.Select(t => t.Data), model.StateDict().Select(t => t.Data)); // nothing was copied
        return message;
    }

    private List<SafeTensor> Good() => new ViT(Config, Dev, seed: 4).StateDict();

    [Fact]
    public void LoadStateDictRefusals()
    {
        var twice = Good();
        twice.Add(twice[3]);
        Assert.Equal($"{Source}: tensor '{twice[3].Name}' appears twice", Refusal(twice));

        var missing = Good().Where(t => t.Name != "mlp_head.bias").ToList();
        Assert.Equal($"{Source}: has no tensor 'mlp_head.bias' [10], which this model needs; it was saved from a different architecture", Refusal(missing));

        var reshaped = Good().Select(t => t.Name == "cls_token" ? t with { Shape = [1, 8, 1] } : t).ToList();
        Assert.Equal($"{Source}: tensor 'cls_token' has shape [1, 8, 1] but the model's is [1, 1, 8]; it was saved from a model with a different config", Refusal(reshaped));

        // A SafeTensor built by hand can disagree with its own shape.
        var short_ = Good().Select(t => t.Name == "cls_token" ? t with { Data = new float[7] } : t).ToList();
        Assert.Equal($"{Source}: tensor 'cls_token' has 7 values for shape [1, 1, 8]", Refusal(short_));

        var extra = Good();
        extra.Insert(2, new SafeTensor("head.extra", [2, 2], new float[4]));
        Assert.Equal($"{Source}: has tensor 'head.extra' [2, 2], which this model does not have; it was saved from a different architecture", Refusal(extra));

        var nan = Good().Select(t => t.Name == "mlp_head.weight" ? t with { Data = [.. t.Data[..5], float.NaN, .. t.Data[6..]] } : t).ToList();
        Assert.Equal($"{Source}: tensor 'mlp_head.weight' holds NaN at index 5; the weights are corrupt or come from a run that diverged. " +
            "Use an earlier checkpoint (or retrain with a lower --lr)", Refusal(nan));
        var first = Good().Select(t => t.Name == "cls_token" ? t with { Data = [float.PositiveInfinity, .. t.Data[1..]] } : t).ToList();
        Assert.Contains("tensor 'cls_token' holds Infinity at index 0;", Refusal(first));
    }

    [Fact]
    public void SaveRefusesAReservedMetadataKey()
    {
        var model = new ViT(Config, Dev, seed: 3);
        string dir = Directory.CreateTempSubdirectory("vit-sd-").FullName;
        try
        {
            string path = Path.Combine(dir, "m.safetensors");
            foreach (var key in new[] { "dim", ViT.SeedKey })
                Assert.Equal($"extra checkpoint metadata key '{key}' is reserved for the model config; use another name",
                    Assert.Throws<ViTScratchException>(() => model.Save(path, new Dictionary<string, string> { [key] = "1" })).Message);
            Assert.Empty(Directory.GetFiles(dir));
            model.Save(path, new Dictionary<string, string> { ["note"] = "kept" });
            Assert.Equal("kept", SafeTensors.Read(path).Metadata["note"]);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void LoadRefusalsNameTheFile()
    {
        var model = new ViT(Config, Dev, seed: 3);
        var meta = Config.ToMetadata();
        meta[ViT.SeedKey] = "3";
        ViTScratchException load(IEnumerable<SafeTensor> tensors, Dictionary<string, string> m) =>
            Assert.Throws<ViTScratchException>(() => ViT.Load(new SafeTensorsFile(tensors.ToList(), m, Source), Source, Dev));

        // A config error keeps its own words behind the file's name.
        var noDim = new Dictionary<string, string>(meta);
        noDim.Remove("dim");
        Assert.StartsWith($"checkpoint '{Source}': model metadata has no 'dim' entry", load(model.StateDict(), noDim).Message);

        Assert.Equal($"checkpoint '{Source}': has no tensor 'cls_token', which every ViT needs; it is not a ViT checkpoint or it is corrupt",
            load(model.StateDict().Where(t => t.Name != "cls_token"), meta).Message);

        Assert.Equal($"checkpoint '{Source}': metadata says depth = 2 but the file stores 1 transformer layers; " +
            "its metadata does not match its weights (the file is corrupt or was edited)",
            load(model.StateDict().Where(t => !t.Name.StartsWith("transformer.layers.1.", StringComparison.Ordinal)), meta).Message);

        var wide = new ViT(Config with { MlpDim = 24 }, Dev, seed: 3).StateDict();
        Assert.Equal($"checkpoint '{Source}': metadata says mlp_dim = 16, dim = 8, so tensor 'transformer.layers.0.1.net.1.weight' should be [16, 8], " +
            "but the file stores [24, 8]; its metadata does not match its weights (the file is corrupt or was edited)", load(wide, meta).Message);

        // One head as wide as the model has no to_out: shapes that fit that config, a count that does not.
        var oneHead = new ViT(Config with { Heads = 1, DimHead = 8 }, Dev, seed: 3).StateDict();
        var twoHeads = Config with { Heads = 2, DimHead = 4 };
        var twoHeadsMeta = twoHeads.ToMetadata();
        Assert.Equal($"checkpoint '{Source}': its metadata describes a model of {twoHeads.ParameterCount} parameters but the file stores " +
            $"{oneHead.Sum(t => t.Data.Length)} values; its metadata does not match its weights (the file is corrupt or was edited)", load(oneHead, twoHeadsMeta).Message);

        // Layer numbers are read from names "transformer.layers.<n>.": a name without the second dot,
        // or with a sign, names no layer.
        var odd = model.StateDict();
        odd.Add(new SafeTensor("transformer.layers.7", [1], [0f]));
        odd.Add(new SafeTensor("transformer.layers.+8.x", [1], [0f]));
        Assert.StartsWith($"{Source}: has tensor 'transformer.layers.7' [1], which this model does not have", load(odd, meta).Message);

        // The seed comes back from the metadata, and without one it is 0.
        Assert.Equal(3, ViT.Load(new SafeTensorsFile(model.StateDict(), meta, Source), Source, Dev).Seed);
        meta.Remove(ViT.SeedKey);
        Assert.Equal(0, ViT.Load(new SafeTensorsFile(model.StateDict(), meta, Source), Source, Dev).Seed);
    }
}
