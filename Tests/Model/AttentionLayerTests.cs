using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The attention layer's own switches, each of which a mutation survived before (Stryker, see
/// docs/testing.md): attention dropout must act in training and only then, to_out exists exactly
/// when vit-pytorch's project_out does, and a head count or head size of 0 is refused.
/// </summary>
public class AttentionLayerTests : ModelTestBase
{
    [Fact]
    public void AttentionDropoutActsInTrainingOnly()
    {
        // heads = 1 and dim_head = dim: no to_out, so no output dropout either; any difference
        // between training and evaluation is the attention dropout's.
        var layer = new Attention(Dev, dim: 8, heads: 1, dimHead: 8, dropout: 0.5f, new DropoutSeeds(3));
        Assert.Null(layer.ToOut);
        Randomise(layer);
        var x = Tensor.FromArray(Dev, RandomValues(2 * 5 * 8), 2, 5, 8);
        layer.Eval();
        var eval = layer.Forward(x).ToArray();
        Assert.Equal(eval, layer.Forward(x).ToArray());
        layer.Train();
        var train = layer.Forward(x).ToArray();
        int differing = 0;
        for (int i = 0; i < eval.Length; i++) if (eval[i] != train[i]) differing++;
        Assert.True(differing > eval.Length / 2, $"only {differing} of {eval.Length} outputs changed with attention dropout 0.5");

        var noDropout = new Attention(Dev, dim: 8, heads: 1, dimHead: 8, dropout: 0f, new DropoutSeeds(3));
        Randomise(noDropout);
        noDropout.Train();
        var y = noDropout.Forward(x).ToArray();
        noDropout.Eval();
        Assert.Equal(y, noDropout.Forward(x).ToArray());
    }

    // Parameters start zeroed until the model's initializer runs: give every one random values.
    private void Randomise(Attention layer)
    {
        foreach (var p in layer.Parameters()) p.Value.CopyFrom(RandomValues(p.Value.Length));
    }

    [Theory]
    [InlineData(1, 8, false)] // project_out = not (heads == 1 and dim_head == dim)
    [InlineData(2, 8, true)]
    [InlineData(1, 4, true)]
    [InlineData(2, 4, true)]
    public void ToOutExistsExactlyWhenVitPytorchProjectsOut(int heads, int dimHead, bool projects)
    {
        var layer = new Attention(Dev, dim: 8, heads, dimHead, dropout: 0f, new DropoutSeeds(1));
        Assert.Equal(projects, layer.ToOut is not null);
        Assert.Equal([3 * heads * dimHead, 8], layer.ToQkv.Weight.Value.Shape);
        var x = Tensor.FromArray(Dev, RandomValues(1 * 3 * 8), 1, 3, 8);
        Assert.Equal([1, 3, 8], layer.Forward(x).Shape);
    }

    [Theory, InlineData(0, 4), InlineData(2, 0)]
    public void ZeroHeadsOrHeadSizeIsRefused(int heads, int dimHead)
    {
        var err = Assert.Throws<ViTScratchException>(() => new Attention(Dev, 8, heads, dimHead, 0f, new DropoutSeeds(1)));
        Assert.Contains("heads ≥ 1 and dim_head ≥ 1", err.Message);
    }
}
