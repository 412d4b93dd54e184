using ViTScratch.Engine;
using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The model with its fused ops (Ops.LinearGelu, Ops.AddLayerNorm; see Engine/Fusions.cs) against
/// the same model with each fusion off. The fusions compute the same function with the same
/// float32 operations in the same order (the bias gradient's column sums included), so the loss
/// and every gradient must agree bit for bit: a training run does not change by a bit when a
/// fusion lands (samples/TrainOwnTensors showed that its 150 steps amplify a last-bit change
/// into 85-99.5% accuracy).
/// </summary>
public class FusionTests : ModelTestBase
{
    private sealed record Step(float Loss, Dictionary<string, float[]> Grads);

    private Step Run(ViT vit, Tensor images, Tensor labels, bool linearGelu, bool addLayerNorm)
    {
        (bool g0, bool n0) = (Fusions.LinearGelu, Fusions.AddLayerNorm);
        try
        {
            Fusions.LinearGelu = linearGelu;
            Fusions.AddLayerNorm = addLayerNorm;
            foreach (var (_, p) in vit.NamedParameters()) p.Value.ZeroGrad();
            using var scope = new TensorScope();
            var loss = Ops.Mean(Ops.CrossEntropy(vit.Forward(images), labels, 0.1f));
            loss.Backward();
            return new(loss.Item(), vit.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.Value.GradToArray()));
        }
        finally
        {
            Fusions.LinearGelu = g0;
            Fusions.AddLayerNorm = n0;
        }
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Fused_and_unfused_steps_agree(bool linearGelu, bool addLayerNorm)
    {
        // MLP width 80: one full 64-column block of the bias gradient's column sums and a ragged one.
        var config = TinyConfig(dropout: 0.2f) with { MlpDim = 80 };
        var vit = new ViT(config, Dev, seed: 3);
        vit.Train();
        var images = RandomImages(config, 4);
        var labels = RandomLabels(4, config.NumClasses);
        vit.Step = 1;
        var plain = Run(vit, images, labels, false, false);
        var fused = Run(vit, images, labels, linearGelu, addLayerNorm);

        Assert.Equal(plain.Loss, fused.Loss);
        foreach (var (name, g) in plain.Grads)
            Assert.True(g.AsSpan().SequenceEqual(fused.Grads[name]), $"{name}: the fused step's gradient differs");
        Assert.Contains(plain.Grads, p => p.Key.EndsWith(".1.net.1.bias", StringComparison.Ordinal) && p.Value.Any(v => v != 0));
    }
}
