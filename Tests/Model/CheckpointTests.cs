using System.Buffers.Binary;
using System.Text;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;

namespace ViTScratch.Tests.Model;

/// <summary>Saving and loading whole models.</summary>
public class CheckpointTests : ModelTestBase
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vit-ckpt-").FullName;

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>A model whose weights are not the initial ones, so a load that silently kept the init would show.</summary>
    private ViT Trained(ViTConfig config, int seed)
    {
        var vit = new ViT(config, Dev, seed);
        foreach (var p in vit.Parameters()) p.Value.CopyFrom(RandomValues(p.Length, 0.3));
        return vit;
    }

    [Theory]
    [InlineData(Pooling.Cls)]
    [InlineData(Pooling.Mean)]
    public void SaveLoadGivesBitIdenticalLogits(Pooling pool)
    {
        var config = TinyConfig(pool, dropout: 0.1f, embDropout: 0.05f);
        var vit = Trained(config, seed: 11);
        vit.Eval();
        var images = RandomImages(config, 5);
        var expected = Logits(vit, images);

        string path = PathOf("m.safetensors");
        vit.Save(path, new Dictionary<string, string> { ["epoch"] = "3" });
        var loaded = ViT.Load(path, Dev);
        loaded.Eval();
        Assert.Equal(config, loaded.Config);
        Assert.Equal(11, loaded.Seed);
        Assert.Equal(expected, Logits(loaded, images));
        Assert.Equal("3", SafeTensors.Read(path).Metadata["epoch"]);

        // LoadWeights into a differently seeded model of the same shape.
        var other = new ViT(config, Dev, seed: 99);
        other.Eval();
        Assert.NotEqual(expected, Logits(other, images));
        other.LoadWeights(path);
        Assert.Equal(expected, Logits(other, images));
    }

    [Fact]
    public void FileUsesVitPytorchNames()
    {
        var vit = new ViT(TinyConfig(), Dev);
        string path = PathOf("names.safetensors");
        vit.Save(path);
        var names = SafeTensors.Read(path).Tensors.Select(t => t.Name).ToHashSet();
        var expected = new HashSet<string>
        {
            "pos_embedding", "cls_token",
            "to_patch_embedding.1.weight", "to_patch_embedding.1.bias", "to_patch_embedding.2.weight", "to_patch_embedding.2.bias",
            "to_patch_embedding.3.weight", "to_patch_embedding.3.bias",
            "transformer.norm.weight", "transformer.norm.bias", "mlp_head.weight", "mlp_head.bias",
        };
        for (int i = 0; i < 2; i++)
            foreach (var s in new[] { "0.norm.weight", "0.norm.bias", "0.to_qkv.weight", "0.to_out.0.weight", "0.to_out.0.bias",
                         "1.net.0.weight", "1.net.0.bias", "1.net.1.weight", "1.net.1.bias", "1.net.4.weight", "1.net.4.bias" })
                expected.Add($"transformer.layers.{i}.{s}");
        Assert.Equal(expected, names);
    }

    [Fact]
    public void ExtraMetadataCannotOverrideTheConfig()
    {
        var vit = new ViT(TinyConfig(), Dev);
        var e = Assert.Throws<ViTScratchException>(() => vit.Save(PathOf("x.safetensors"), new Dictionary<string, string> { ["dim"] = "9" }));
        Assert.Contains("'dim'", e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void ShapeMismatchNamesTheTensorAndLeavesTheModelUnchanged()
    {
        string path = PathOf("wide.safetensors");
        Trained(TinyConfig() with { MlpDim = 24 }, 1).Save(path);
        var vit = new ViT(TinyConfig(), Dev, seed: 2);
        var before = vit.StateDict();
        var e = Assert.Throws<ViTScratchException>(() => vit.LoadWeights(path));
        Assert.Contains("'transformer.layers.0.1.net.1.weight'", e.Message);
        Assert.Contains("[24, 8]", e.Message);
        Assert.Contains("[16, 8]", e.Message);
        AssertSameWeights(before, vit.StateDict());
    }

    [Fact]
    public void MissingAndExtraTensorsAreNamed()
    {
        var vit = new ViT(TinyConfig(), Dev, seed: 2);
        var state = vit.StateDict();
        var before = vit.StateDict();

        var renamed = state.Select(t => t.Name == "mlp_head.bias" ? t with { Name = "head.bias" } : t).ToList();
        string path = PathOf("renamed.safetensors");
        SafeTensors.Write(path, renamed);
        var e = Assert.Throws<ViTScratchException>(() => vit.LoadWeights(path));
        Assert.Contains("no tensor 'mlp_head.bias'", e.Message);

        SafeTensors.Write(path, [.. state, new SafeTensor("extra.weight", [2], [1f, 2f])]);
        e = Assert.Throws<ViTScratchException>(() => vit.LoadWeights(path));
        Assert.Contains("'extra.weight'", e.Message);

        // A model with fewer layers: its file lacks layer 1.
        Trained(TinyConfig() with { Depth = 1 }, 1).Save(path);
        e = Assert.Throws<ViTScratchException>(() => vit.LoadWeights(path));
        Assert.Contains("'transformer.layers.1.", e.Message);
        AssertSameWeights(before, vit.StateDict());
    }

    [Fact]
    public void CorruptFileLeavesTheModelUnchanged()
    {
        string path = PathOf("corrupt.safetensors");
        var source = Trained(TinyConfig(), 1);
        source.Save(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^4]); // the last tensor's data is cut short

        var vit = new ViT(TinyConfig(), Dev, seed: 2);
        var before = vit.StateDict();
        var e = Assert.Throws<ViTScratchException>(() => vit.LoadWeights(path));
        Assert.Contains("truncated", e.Message);
        AssertSameWeights(before, vit.StateDict());
        Assert.Throws<ViTScratchException>(() => ViT.Load(path, Dev));
    }

    [Fact]
    public void LoadWithoutConfigMetadataSaysSo()
    {
        var vit = new ViT(TinyConfig(), Dev);
        string path = PathOf("bare.safetensors");
        SafeTensors.Write(path, vit.StateDict());
        var e = Assert.Throws<ViTScratchException>(() => ViT.Load(path, Dev));
        Assert.Contains("image_size", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void HeaderMetadataHoldsTheConfig()
    {
        var config = TinyConfig(Pooling.Mean, dropout: 0.1f, embDropout: 0.3f);
        string path = PathOf("meta.safetensors");
        new ViT(config, Dev, seed: -4).Save(path);
        var bytes = File.ReadAllBytes(path);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string header = Encoding.UTF8.GetString(bytes, 8, n);
        Assert.Contains("\"pool\":\"mean\"", header);
        Assert.Contains("\"dropout\":\"0.1\"", header);
        Assert.Contains("\"model_seed\":\"-4\"", header);
        Assert.Equal(config, ViTConfig.FromMetadata(SafeTensors.Read(path).Metadata));
    }

    private static void AssertSameWeights(List<SafeTensor> expected, List<SafeTensor> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Name, actual[i].Name);
            Assert.Equal(expected[i].Data, actual[i].Data);
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
