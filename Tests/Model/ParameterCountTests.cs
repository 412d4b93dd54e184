using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

public class ParameterCountTests : ModelTestBase
{
    /// <summary>
    /// The count written out independently of the model code, term by term as vit-pytorch builds it.
    /// </summary>
    private static long ClosedForm(int channels, int image, int patch, int classes, int dim, int depth, int heads, int dimHead, int mlp)
    {
        long pd = patch * patch * channels, n = (image / patch) * (image / patch), inner = heads * dimHead, d = dim;
        long patchNorm = 2 * pd;                 // to_patch_embedding.1: LayerNorm(pd)
        long patchLinear = pd * d + d;           // to_patch_embedding.2: Linear(pd, dim)
        long embNorm = 2 * d;                    // to_patch_embedding.3: LayerNorm(dim)
        long pos = (n + 1) * d;                  // pos_embedding [1, n+1, dim]
        long cls = d;                            // cls_token [1, 1, dim]
        bool projectOut = !(heads == 1 && dimHead == dim);
        long perLayer = 2 * d                    // attention norm
            + d * 3 * inner                      // to_qkv, no bias
            + (projectOut ? inner * d + d : 0)   // to_out.0
            + 2 * d                              // net.0 LayerNorm
            + d * mlp + mlp                      // net.1 Linear(dim, mlp)
            + mlp * d + d;                       // net.4 Linear(mlp, dim)
        long finalNorm = 2 * d;
        long head = d * classes + classes;
        return patchNorm + patchLinear + embNorm + pos + cls + depth * perLayer + finalNorm + head;
    }

    [Theory]
    [InlineData("vit-micro", 3, 32)]
    [InlineData("vit-micro", 1, 28)]
    [InlineData("vit-tiny", 3, 32)]
    [InlineData("vit-tiny", 1, 28)]
    [InlineData("vit-small", 3, 32)]
    [InlineData("vit-small", 1, 28)]
    public void PresetCountsMatchClosedForm(string name, int channels, int size)
    {
        var preset = ViTPresets.Get(name);
        var config = ViTPresets.Create(name, channels, size, size, 10);
        long expected = ClosedForm(channels, size, 4, 10, preset.Dim, preset.Depth, preset.Heads, preset.DimHead, preset.MlpDim);
        var vit = new ViT(config, Dev, seed: 1);
        Assert.Equal(expected, vit.ParameterCount);
        Assert.Equal(expected, config.ParameterCount);
        Assert.Equal(expected, ViTPresets.List(channels, size, size, 10).Single(i => i.Preset.Name == name).ParameterCount);
    }

    [Fact]
    public void MicroOnCifarByHand()
    {
        // pd = 48, N = 64, D = 128: embedding 96 + 6272 + 256 + 8320 + 128 = 15072;
        // layer 256 + 49152 + 16512 + 256 + 33024 + 32896 = 132096, four of them 528384;
        // final norm 256; head 1290. Total 545002.
        Assert.Equal(545_002, ViTPresets.Create("vit-micro", 3, 32, 32, 10).ParameterCount);
    }

    [Fact]
    public void SingleFullWidthHeadHasNoOutputProjection()
    {
        var config = new ViTConfig(ImageSize: 12, PatchSize: 4, NumClasses: 7, Dim: 16, Depth: 3, Heads: 1, MlpDim: 24, Channels: 2, DimHead: 16);
        var vit = new ViT(config, Dev);
        Assert.DoesNotContain(vit.NamedParameters(), p => p.Name.Contains("to_out"));
        Assert.Equal(ClosedForm(2, 12, 4, 7, 16, 3, 1, 16, 24), vit.ParameterCount);
        Assert.Equal(vit.ParameterCount, config.ParameterCount);
    }

    [Theory]
    [InlineData(1, 8, 16)] // one head narrower than the model
    [InlineData(2, 16, 16)] // heads as wide as the model, but two of them
    public void AnyOtherHeadShapeHasAnOutputProjection(int heads, int dimHead, int dim)
    {
        var config = new ViTConfig(ImageSize: 12, PatchSize: 4, NumClasses: 7, Dim: dim, Depth: 2, Heads: heads, MlpDim: 24, Channels: 2, DimHead: dimHead);
        Assert.True(config.ProjectOut);
        var vit = new ViT(config, Dev);
        Assert.Contains(vit.NamedParameters(), p => p.Name == "transformer.layers.1.0.to_out.0.weight");
        Assert.Equal(ClosedForm(2, 12, 4, 7, dim, 2, heads, dimHead, 24), config.ParameterCount);
    }

    [Fact]
    public void DescribeIsATable()
    {
        var lines = ViTPresets.Describe(3, 32, 32, 10).Split(Environment.NewLine);
        Assert.Equal("presets for 3x32x32 images, 10 classes:", lines[0]);
        Assert.Equal("  name        patch  tokens  dim  depth  heads  dim_head  mlp    parameters", lines[1]);
        Assert.Equal("  vit-micro       4      65  128      4      4        32   256       545,002", lines[2]);
    }

    [Fact]
    public void DescribeListsEveryPreset()
    {
        var text = ViTPresets.Describe(1, 28, 28, 10);
        foreach (var p in ViTPresets.All) Assert.Contains(p.Name, text);
        Assert.Contains(ViTPresets.Create("vit-tiny", 1, 28, 28, 10).ParameterCount.ToString("N0", System.Globalization.CultureInfo.InvariantCulture), text);
    }
}
