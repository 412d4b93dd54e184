using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>
/// ViTConfig's limits from both sides, exactly at each one (accepted) and one past it (refused, by
/// that limit's message), and the message of every other refusal in ViTConfig and ViTPresets.
/// CheckpointValidationTests shows that a checkpoint's config passes through these checks; this
/// pins the checks themselves, so that a comparison moved by one or a message emptied fails a test
/// (Stryker found them unpinned: docs/testing.md).
/// </summary>
public class ConfigLimitTests
{
    /// <summary>A small valid config: 8×8 images, 4×4 patches, 3 channels.</summary>
    private static readonly ViTConfig Small = new(ImageSize: 8, PatchSize: 4, NumClasses: 10, Dim: 8, Depth: 2, Heads: 2, MlpDim: 16, DimHead: 4);

    private static string Refusal(ViTConfig c) => Assert.Throws<ViTScratchException>(() => c.Validate()).Message;

    private static void Accepted(ViTConfig c) => Assert.Same(c, c.Validate());

    public static TheoryData<string, Func<int, ViTConfig>, int> Fields => new()
    {
        // Each field alone at its maximum, the others chosen so that no derived limit is reached.
        // (patch_size has its own test: a patch of 8192 makes more values per patch than MaxPatchDim.)
        { "image_size", v => Small with { ImageSize = v, PatchSize = 64 }, ViTConfig.MaxImageSize },
        { "num_classes", v => Small with { NumClasses = v }, ViTConfig.MaxClasses },
        { "dim", v => Small with { Dim = v }, ViTConfig.MaxDim },
        { "depth", v => Small with { Depth = v }, ViTConfig.MaxDepth },
        { "heads", v => Small with { Heads = v, DimHead = 1 }, ViTConfig.MaxHeads },
        { "mlp_dim", v => Small with { MlpDim = v }, ViTConfig.MaxMlpDim },
        { "channels", v => Small with { Channels = v }, ViTConfig.MaxChannels },
        { "dim_head", v => Small with { Heads = 1, DimHead = v }, ViTConfig.MaxDimHead },
    };

    [Theory]
    [MemberData(nameof(Fields))]
    public void EachFieldIsAcceptedAtItsMaximumAndRefusedPastIt(string name, Func<int, ViTConfig> with, int max)
    {
        Accepted(with(max));
        Assert.Equal($"{name} {max + 1} is larger than this engine supports (at most {max})", Refusal(with(max + 1)));
        Assert.Equal($"{name} must be at least 1 (got 0)", Refusal(with(0)));
        Assert.Equal($"{name} must be at least 1 (got -3)", Refusal(with(-3)));
    }

    [Fact]
    public void PatchSizeLimits()
    {
        // 4096² pixels at one channel is exactly MaxPatchDim values per patch.
        Accepted(Small with { ImageSize = 8192, PatchSize = 4096, Channels = 1 });
        Assert.Equal("patch_size 8193 is larger than this engine supports (at most 8192)", Refusal(Small with { ImageSize = 8192, PatchSize = 8193 }));
        Assert.Equal("patch_size must be at least 1 (got 0)", Refusal(Small with { PatchSize = 0 }));
        Assert.Equal("image size 8 is not divisible by patch size 3; choose a patch size that divides the image size", Refusal(Small with { PatchSize = 3 }));
    }

    [Fact]
    public void ValuesPerPatchAtTheLimit()
    {
        Assert.Equal(ViTConfig.MaxPatchDim, (Small with { ImageSize = 4096, PatchSize = 4096, Channels = 1 }).PatchDim);
        Accepted(Small with { ImageSize = 4096, PatchSize = 4096, Channels = 1 });
        Assert.Equal("patch size 4096 with 2 channels makes patches of 33554432 values, more than 16777216",
            Refusal(Small with { ImageSize = 4096, PatchSize = 4096, Channels = 2 }));
    }

    [Fact]
    public void TokensAtTheLimit()
    {
        // 255² + 1 = 65026 tokens pass; 256² + 1 = 65537 is the first square grid past 65536.
        Accepted(Small with { ImageSize = 255, PatchSize = 1 });
        Assert.Equal($"image size 256 with patch size 1 makes 65536 patches, more than 65535; use a larger patch",
            Refusal(Small with { ImageSize = 256, PatchSize = 1 }));
    }

    [Fact]
    public void QueryWidthAtTheLimit()
    {
        Accepted(Small with { Heads = 16, DimHead = 65536 });
        Assert.Equal("heads 17 x dim_head 65536 = 1114112, more than 1048576", Refusal(Small with { Heads = 17, DimHead = 65536 }));
    }

    [Fact]
    public void ParameterCountAtTheLimit()
    {
        // Found by a search over (depth, mlp_dim, num_classes) at width 1 and one head of width 1
        // (no to_out): 56 + depth·(8 + 3·mlp) + 2·classes = 2^31 - 1 exactly.
        var atLimit = new ViTConfig(ImageSize: 4, PatchSize: 4, NumClasses: 484, Dim: 1, Depth: 1023, Heads: 1, MlpDim: 699731, Channels: 1, DimHead: 1);
        Assert.Equal(int.MaxValue, atLimit.ParameterCount);
        Accepted(atLimit);
        var past = atLimit with { NumClasses = 485 };
        Assert.Equal(int.MaxValue + 2L, past.ParameterCount);
        Assert.Equal("this configuration has 2147483649 parameters, more than this engine supports", Refusal(past));
    }

    [Theory]
    [InlineData("dropout")]
    [InlineData("emb_dropout")]
    [InlineData("patch_dropout")]
    public void ProbabilitiesAreInZeroToOne(string name)
    {
        ViTConfig with(float p) => name switch
        {
            "dropout" => Small with { Dropout = p },
            "emb_dropout" => Small with { EmbDropout = p },
            _ => Small with { PatchDropout = p },
        };
        Accepted(with(0f));
        Accepted(with(0.99999994f)); // the largest float below 1
        Assert.Equal($"{name} 1 must be in [0, 1)", Refusal(with(1f)));
        Assert.Equal($"{name} -1E-45 must be in [0, 1)", Refusal(with(-float.Epsilon)));
        Assert.Equal($"{name} NaN must be in [0, 1)", Refusal(with(float.NaN)));
    }

    [Fact]
    public void NonSquareImagesAreRefusedWithTheFix()
    {
        var e = Assert.Throws<ViTScratchException>(() => ViTConfig.ForImages(3, 32, 28, 4, 10, 8, 1, 2, 4, 16));
        Assert.Equal("images are 32x28 but this ViT takes square images; resize or crop them to a square", e.Message);
        Assert.Equal(32, ViTConfig.ForImages(3, 32, 32, 4, 10, 8, 1, 2, 4, 16).ImageSize);
    }

    [Fact]
    public void MetadataRefusalsNameTheKey()
    {
        string refusal(Action<Dictionary<string, string>> edit)
        {
            var m = Small.ToMetadata();
            edit(m);
            return Assert.Throws<ViTScratchException>(() => ViTConfig.FromMetadata(m)).Message;
        }
        Assert.Equal("model metadata has no 'dim' entry (it needs all of: image_size, patch_size, num_classes, dim, depth, heads, mlp_dim, pool, " +
            "channels, dim_head, dropout, emb_dropout, patch_dropout); was this file written by ViT.Save?", refusal(m => m.Remove("dim")));
        Assert.Equal("model metadata 'depth' = '2.0' is not a whole number below 2^31", refusal(m => m["depth"] = "2.0"));
        Assert.Equal("model metadata 'dropout' = 'a tenth' is not a number", refusal(m => m["dropout"] = "a tenth"));
        Assert.Equal("pool 'max' is not one of: cls, mean", refusal(m => m["pool"] = "max"));
        // Only patch_dropout, added later, may be missing.
        Assert.Equal(Small, ViTConfig.FromMetadata(Small.ToMetadata().Where(kv => kv.Key != "patch_dropout").ToDictionary()));
        Assert.Equal(Pooling.Mean, ViTConfig.FromMetadata((Small with { Pool = Pooling.Mean }).ToMetadata()).Pool);
    }

    [Fact]
    public void JsonRefusals()
    {
        Assert.Equal("model config JSON is 'null'", Assert.Throws<ViTScratchException>(() => ViTConfig.FromJson("null")).Message);
        Assert.StartsWith("model config JSON is invalid: ", Assert.Throws<ViTScratchException>(() => ViTConfig.FromJson("{")).Message);
        // A missing argument without a default is named as missing, not read as 0.
        var missing = Assert.Throws<ViTScratchException>(() => ViTConfig.FromJson(Small.ToJson().Replace("\"depth\": 2,", ""))).Message;
        Assert.StartsWith("model config JSON is invalid: ", missing);
        Assert.Contains("'depth'", missing);
        // A well-formed JSON config is range-checked like every other.
        Assert.Equal("depth must be at least 1 (got 0)", Assert.Throws<ViTScratchException>(() => ViTConfig.FromJson(Small.ToJson().Replace("\"depth\": 2", "\"depth\": 0"))).Message);
    }

    [Fact]
    public void PresetRefusals()
    {
        Assert.Equal("unknown model preset 'vit-huge'; choose one of: vit-micro, vit-tiny, vit-small",
            Assert.Throws<ViTScratchException>(() => ViTPresets.Get("vit-huge")).Message);
        Assert.Same(ViTPresets.Tiny, ViTPresets.Get("ViT-Tiny"));
        Assert.Equal("ViTPresets.Create: patch size -1 must be positive (or 0 for the preset's)",
            Assert.Throws<ViTScratchException>(() => ViTPresets.Create("vit-tiny", 3, 32, 32, 10, patchSize: -1)).Message);
        Assert.Equal(ViTPresets.Tiny.PatchSize, ViTPresets.Create("vit-tiny", 3, 32, 32, 10, patchSize: 0).PatchSize);
        Assert.Equal(8, ViTPresets.Create("vit-tiny", 3, 32, 32, 10, patchSize: 8).PatchSize);
    }
}
