using ViTScratch.Engine;
using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>Train/eval modes, dropout seeding, initialisation, names and flags, attention capture.</summary>
public class ModelBehaviourTests : ModelTestBase
{
    private static float[] TrainLogits(ViT vit, Tensor images, uint step)
    {
        vit.Train();
        vit.Step = step;
        using var scope = new TensorScope();
        using var noGrad = Tensor.NoGrad();
        return vit.Forward(images).ToArray();
    }

    [Theory]
    [InlineData(0.2f, 0f)]   // dropout in attention and MLP only
    [InlineData(0f, 0.2f)]   // embedding dropout only
    public void DropoutIsActiveOnlyInTraining(float dropout, float embDropout)
    {
        var config = TinyConfig(dropout: dropout, embDropout: embDropout);
        var vit = new ViT(config, Dev, seed: 4);
        var images = RandomImages(config, 3);

        var a = TrainLogits(vit, images, step: 1);
        var b = TrainLogits(vit, images, step: 1);
        var c = TrainLogits(vit, images, step: 2);
        Assert.Equal(a, b);     // the masks are a function of (seed, step, site)
        Assert.NotEqual(a, c);  // a new step draws new masks

        vit.Eval();
        vit.Step = 1;
        var e1 = Logits(vit, images);
        vit.Step = 2;
        var e2 = Logits(vit, images);
        Assert.Equal(e1, e2);
        Assert.NotEqual(a, e1);

        // Eval mode is exactly the model without dropout: same seed → same weights (dropout has none).
        var plain = new ViT(TinyConfig(), Dev, seed: 4);
        plain.Eval();
        Assert.Equal(e1, Logits(plain, images));
        // And with p = 0, training mode is deterministic too.
        Assert.Equal(TrainLogits(plain, images, 1), TrainLogits(plain, images, 2));
    }

    [Fact]
    public void PatchDropoutKeepsTheClsTokenAndAUniformSampleOfPatches()
    {
        var layer = new PatchDropout(0.5f, numPatches: 16, new DropoutSeeds(3));
        Assert.Equal(8, layer.Keep);
        var timesKept = new int[17];
        const int draws = 4000;
        for (uint seed = 0; seed < draws; seed++)
        {
            var kept = layer.KeptTokens(seed);
            Assert.Equal(9, kept.Length);
            Assert.Equal(0, kept[0]);
            for (int j = 1; j < kept.Length; j++) Assert.True(kept[j] > kept[j - 1] && kept[j] <= 16, string.Join(",", kept));
            foreach (int t in kept) timesKept[t]++;
            Assert.Equal(kept, layer.KeptTokens(seed)); // a function of the seed
        }
        // Each patch is kept with probability 1/2: over 4000 draws the count's standard deviation is ~32.
        for (int t = 1; t <= 16; t++) Assert.InRange(timesKept[t], draws / 2 - 160, draws / 2 + 160);
        Assert.Equal(1, new PatchDropout(0.95f, 16, new DropoutSeeds(3)).Keep); // at least one patch
        Assert.Throws<ViTScratchException>(() => new PatchDropout(1f, 16, new DropoutSeeds(3)));
    }

    // Three refusals and an edge that mutation testing found untested: a rate of 1 (everything
    // dropped, a 1/(1 - p) scale of infinity) must be refused by both dropouts, and a patch dropout
    // that drops nothing keeps every token (one more shuffle step than kept slots divided by zero).
    [Fact]
    public void DropoutRatesOfOneAreRefusedAndNothingDroppedKeepsEveryToken()
    {
        var seeds = new DropoutSeeds(3);
        Assert.Contains("must be in [0, 1)", Assert.Throws<ViTScratchException>(() => new Dropout(1f, seeds)).Message);
        Assert.Contains("must be in [0, 1)", Assert.Throws<ViTScratchException>(() => new PatchDropout(1f, 16, seeds)).Message);
        Assert.Equal(0.999f, new Dropout(0.999f, seeds).P);
        var keepAll = new PatchDropout(0.01f, 16, seeds); // round(0.99 · 16) = 16
        Assert.Equal(16, keepAll.Keep);
        Assert.Equal(Enumerable.Range(0, 17), keepAll.KeptTokens(5));
    }

    // The model names a wrong image shape in one line, even when only one of channels, height or
    // width is off (an `||` → `&&` in the check passed those; found by mutation testing).
    [Theory]
    [InlineData(1, 3, 8, 8, false)]
    [InlineData(1, 2, 8, 8, true)]  // channels
    [InlineData(1, 3, 4, 8, true)]  // height (still a whole number of patches)
    [InlineData(1, 3, 8, 12, true)] // width
    public void AnImageWrongInOneDimensionIsNamed(int batch, int channels, int height, int width, bool refused)
    {
        var vit = new ViT(TinyConfig(), Dev, seed: 4);
        var images = Tensor.FromArray(Dev, RandomValues(batch * channels * height * width), batch, channels, height, width);
        if (!refused) { Assert.Equal(10, Logits(vit, images).Length); return; }
        var e = Assert.Throws<ViTScratchException>(() => Logits(vit, images));
        Assert.Contains($"images have shape [{batch}, {channels}, {height}, {width}] but this model takes [B, 3, 8, 8]", e.Message);
    }

    [Fact]
    public void PatchDropoutActsOnlyInTraining()
    {
        var config = TinyConfig() with { ImageSize = 16 }; // 16 patches of 4x4
        var dropped = new ViT(config with { PatchDropout = 0.5f }, Dev, seed: 4);
        var plain = new ViT(config, Dev, seed: 4);
        var images = RandomImages(config, 3);

        // Training: the attention sees the cls token and 8 of the 16 patches, a new set each step.
        dropped.CaptureAttention = true;
        var a = TrainLogits(dropped, images, step: 1);
        Assert.Equal([3, 2, 9, 9], dropped.AttentionMaps[0].Shape);
        Assert.Equal(a, TrainLogits(dropped, images, step: 1));
        Assert.NotEqual(a, TrainLogits(dropped, images, step: 2));
        Assert.NotEqual(a, TrainLogits(plain, images, step: 1));

        // Evaluation: every token, exactly the model without patch dropout (same seed, same weights).
        dropped.Eval();
        plain.Eval();
        Assert.Equal(Logits(plain, images), Logits(dropped, images));
        Assert.Equal([3, 2, 17, 17], dropped.AttentionMaps[0].Shape);
    }

    [Fact]
    public void DropoutSitesGetDistinctSeeds()
    {
        var seeds = new DropoutSeeds(7);
        var all = new HashSet<uint>();
        for (uint step = 0; step < 50; step++)
        {
            seeds.Step = step;
            for (int site = 0; site < 40; site++) all.Add(seeds.SeedFor(site));
        }
        Assert.Equal(50 * 40, all.Count);
        Assert.NotEqual(new DropoutSeeds(7).SeedFor(0), new DropoutSeeds(8).SeedFor(0));
    }

    [Fact]
    public void TrainAndEvalReachEveryModule()
    {
        var vit = new ViT(TinyConfig(dropout: 0.1f), Dev);
        IEnumerable<Module> All(Module m) => new[] { m }.Concat(m.Children.SelectMany(c => All(c.Module)));
        Assert.All(All(vit), m => Assert.True(m.Training));
        vit.Eval();
        Assert.All(All(vit), m => Assert.False(m.Training));
        Assert.Contains(All(vit), m => m is Dropout);
    }

    [Fact]
    public void SameSeedSameModelOtherSeedOtherModel()
    {
        var config = TinyConfig();
        var a = new ViT(config, Dev, seed: 21).StateDict();
        var b = new ViT(config, Dev, seed: 21).StateDict();
        var c = new ViT(config, Dev, seed: 22).StateDict();
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i].Data, b[i].Data);
        Assert.NotEqual(a.Single(t => t.Name == "cls_token").Data, c.Single(t => t.Name == "cls_token").Data);
    }

    [Fact]
    public void InitialisationFollowsTheRecipe()
    {
        var vit = new ViT(ViTPresets.Create("vit-micro", 3, 32, 32, 10), Dev, seed: 1);
        foreach (var (name, p) in vit.NamedParameters())
        {
            var v = p.Value.ToArray();
            switch (p.Init)
            {
                case ParameterInit.Ones: Assert.All(v, x => Assert.Equal(1f, x)); break;
                case ParameterInit.Zeros: Assert.All(v, x => Assert.Equal(0f, x)); break;
                default:
                    Assert.All(v, x => Assert.InRange(x, -0.04f, 0.04f)); // truncated at ±2 std
                    if (v.Length >= 10_000)
                    {
                        double mean = v.Average(x => (double)x);
                        double std = Math.Sqrt(v.Average(x => (x - mean) * (x - mean)));
                        // N(0, 0.02²) cut at ±2σ has std 0.02·0.8796 = 0.01759; with ≥ 10⁴ samples the
                        // sample std is within 1.5 % of it (its standard error is ~0.6 %).
                        Assert.InRange(std, 0.01759 * 0.985, 0.01759 * 1.015);
                        Assert.InRange(mean, -0.001, 0.001); // standard error 0.0176/100 = 1.8e-4
                    }
                    break;
            }
            bool isNorm = name.Contains("norm") || name.StartsWith("to_patch_embedding.1") || name.StartsWith("to_patch_embedding.3") || name.Contains("net.0");
            var expectedInit = name is "pos_embedding" or "cls_token" ? ParameterInit.TruncatedNormal
                : name.EndsWith(".bias") ? ParameterInit.Zeros
                : isNorm ? ParameterInit.Ones
                : ParameterInit.TruncatedNormal;
            Assert.True(expectedInit == p.Init, $"{name}: {p.Init}, expected {expectedInit}");
        }
    }

    [Fact]
    public void OnlyLinearWeightsDecay()
    {
        var vit = new ViT(TinyConfig(), Dev);
        var decayed = vit.NamedParameters().Where(x => x.Parameter.WeightDecay).Select(x => x.Name).ToHashSet();
        var expected = new HashSet<string> { "to_patch_embedding.2.weight", "mlp_head.weight" };
        for (int i = 0; i < 2; i++)
            foreach (var s in new[] { "0.to_qkv.weight", "0.to_out.0.weight", "1.net.1.weight", "1.net.4.weight" })
                expected.Add($"transformer.layers.{i}.{s}");
        Assert.Equal(expected, decayed);
        Assert.All(vit.NamedParameters(), x => Assert.Equal(x.Name, x.Parameter.Name));
        Assert.All(vit.Parameters(), p => Assert.True(p.Value.RequiresGrad));
    }

    [Fact]
    public void ParameterOrderFollowsPyTorch()
    {
        var names = new ViT(TinyConfig(), Dev).NamedParameters().Select(x => x.Name).ToList();
        Assert.Equal(["pos_embedding", "cls_token", "to_patch_embedding.1.weight"], names.Take(3));
        Assert.Equal(["transformer.norm.weight", "transformer.norm.bias", "transformer.layers.0.0.norm.weight"],
            names.SkipWhile(n => !n.StartsWith("transformer")).Take(3));
        Assert.Equal(["mlp_head.weight", "mlp_head.bias"], names.TakeLast(2));
    }

    [Fact]
    public void ConfigRoundTripsThroughJsonAndMetadata()
    {
        var config = new ViTConfig(ImageSize: 28, PatchSize: 7, NumClasses: 13, Dim: 24, Depth: 3, Heads: 5, MlpDim: 65,
            Pool: Pooling.Mean, Channels: 1, DimHead: 9, Dropout: 0.1f, EmbDropout: 1f / 3, PatchDropout: 0.25f);
        Assert.Equal(config, ViTConfig.FromJson(config.ToJson()));
        Assert.Equal(config, ViTConfig.FromMetadata(config.ToMetadata()));
        Assert.Contains("\"pool\": \"mean\"", config.ToJson());
        Assert.Contains("\"image_size\": 28", config.ToJson());
        var json = config.ToJson().Replace("\"dim\": 24", "\"dim\": 24, \"dimm\": 3");
        Assert.Contains("dimm", Assert.Throws<ViTScratchException>(() => ViTConfig.FromJson(json)).Message);
        Assert.Throws<ViTScratchException>(() => ViTConfig.FromJson("{\"image_size\": 28}"));
        var meta = config.ToMetadata();
        meta.Remove("patch_dropout"); // files written before the option existed
        Assert.Equal(config with { PatchDropout = 0f }, ViTConfig.FromMetadata(meta));
        meta["heads"] = "five";
        Assert.Contains("'heads'", Assert.Throws<ViTScratchException>(() => ViTConfig.FromMetadata(meta)).Message);
    }

    [Fact]
    public void BadShapesAreRejectedWithBothNumbers()
    {
        var e = Assert.Throws<ViTScratchException>(() => ViTPresets.Create("vit-micro", 3, 32, 28, 10));
        Assert.Contains("32x28", e.Message);
        e = Assert.Throws<ViTScratchException>(() => new ViT(new ViTConfig(30, 4, 10, 8, 1, 2, 16), Dev));
        Assert.Contains("30", e.Message);
        Assert.Contains("4", e.Message);
        e = Assert.Throws<ViTScratchException>(() => ViTPresets.Create("vit-huge", 3, 32, 32, 10));
        Assert.Contains("vit-micro", e.Message);
        Assert.Throws<ViTScratchException>(() => new ViT(TinyConfig(dropout: 1f), Dev));

        var vit = new ViT(TinyConfig(), Dev);
        e = Assert.Throws<ViTScratchException>(() => vit.Forward(Tensor.FromArray(Dev, RandomValues(2 * 3 * 8 * 12), 2, 3, 8, 12)));
        Assert.Contains("[2, 3, 8, 12]", e.Message);
        Assert.Contains("[B, 3, 8, 8]", e.Message);
    }

    [Theory]
    [InlineData(Pooling.Cls)]
    [InlineData(Pooling.Mean)]
    public void ForwardGivesLogitsPerImage(Pooling pool)
    {
        var config = TinyConfig(pool);
        var vit = new ViT(config, Dev, seed: 9);
        vit.Eval();
        var images = RandomImages(config, 7);
        var all = Logits(vit, images);
        Assert.Equal(7 * config.NumClasses, all.Length);
        // Images do not interact: a batch of one gives the same logits as its row in the batch of 7.
        var img = images.ToArray();
        int per = 3 * 8 * 8;
        var one = Logits(vit, Tensor.FromArray(Dev, img.AsSpan(5 * per, per), 1, 3, 8, 8));
        for (int c = 0; c < config.NumClasses; c++) Assert.Equal(all[5 * config.NumClasses + c], one[c], 1e-5f);
    }

    [Fact]
    public void CapturedAttentionIsAStochasticMatrixPerLayer()
    {
        var config = TinyConfig();
        var vit = new ViT(config, Dev, seed: 8);
        foreach (var p in vit.Parameters()) if (p.Init == ParameterInit.TruncatedNormal) p.Value.CopyFrom(RandomValues(p.Length, 0.5));
        vit.Eval();
        var images = RandomImages(config, 2);
        var plain = Logits(vit, images);
        vit.CaptureAttention = true;
        Assert.Equal(plain, Logits(vit, images)); // capturing does not change the result
        var maps = vit.AttentionMaps;
        Assert.Equal(config.Depth, maps.Count);
        foreach (var map in maps)
        {
            Assert.Equal([2, config.Heads, config.NumPatches + 1, config.NumPatches + 1], map.Shape);
            int n = map.Shape[3];
            for (int row = 0; row < map.Weights.Length / n; row++)
                Assert.Equal(1.0, map.Weights.AsSpan(row * n, n).ToArray().Sum(x => (double)x), 1e-5);
            Assert.Contains(map.Weights, w => Math.Abs(w - 1.0 / n) > 0.01); // not uniform: the scores matter
        }
    }
}
