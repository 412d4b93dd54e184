using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Model;
using Xunit.Abstractions;

namespace ViTScratch.Tests.Model;

public class MemorizationTests(ITestOutputHelper output) : ModelTestBase
{
    /// <summary>
    /// A small ViT must fit 64 random images with random labels: nothing to generalise, so only an
    /// end-to-end correct forward, backward and parameter wiring drives the training error to zero.
    /// </summary>
    [Fact]
    public void SmallViTMemorisesRandomLabels()
    {
        var config = new ViTConfig(ImageSize: 12, PatchSize: 4, NumClasses: 10, Dim: 32, Depth: 2, Heads: 2, MlpDim: 64, Channels: 3, DimHead: 16);
        var vit = new ViT(config, Dev, seed: 5);
        const int n = 64;
        var images = RandomImages(config, n);
        var labels = RandomLabels(n, config.NumClasses);
        var labelValues = labels.ToArray();

        var parameters = vit.Parameters();
        var m = parameters.Select(p => Dev.Kernels.Allocate(p.Length)).ToArray(); // zero-filled
        var v = parameters.Select(p => Dev.Kernels.Allocate(p.Length)).ToArray();

        const int maxSteps = 150; // it takes ~20 on this seed; the bound leaves room for other seeds and backends
        int solvedAt = -1;
        float firstLoss = float.NaN, loss = float.NaN;
        for (int step = 1; step <= maxSteps && solvedAt < 0; step++)
        {
            vit.Train();
            using (new TensorScope())
            {
                vit.ZeroGrad();
                var l = Ops.Mean(Ops.CrossEntropy(vit.Forward(images), labels));
                l.Backward();
                loss = l.Item();
                if (step == 1) firstLoss = loss;
            }
            using (Tensor.NoGrad())
                for (int i = 0; i < parameters.Count; i++)
                {
                    var p = parameters[i];
                    var args = new AdamWArgs(Lr: 3e-3f, Beta1: 0.9f, Beta2: 0.999f, Eps: 1e-8f, WeightDecay: p.WeightDecay ? 0.01f : 0f, Step: step);
                    Dev.Kernels.AdamWStep(p.Value.Data, p.Value.Grad!, m[i], v[i], p.Length, args, null, 0f);
                }

            if (step % 5 == 0)
            {
                vit.Eval();
                if (Accuracy(Logits(vit, images), labelValues) == 1.0) solvedAt = step;
            }
        }
        output.WriteLine($"memorised at step {solvedAt}: loss {firstLoss:F3} → {loss:F3}");
        Assert.True(solvedAt > 0, $"not memorised in {maxSteps} steps: loss {firstLoss:F3} → {loss:F3}, accuracy {Accuracy(Logits(vit, images), labelValues):P0}");
    }

    private static double Accuracy(float[] logits, float[] labels)
    {
        int classes = logits.Length / labels.Length, correct = 0;
        for (int r = 0; r < labels.Length; r++)
        {
            int best = 0;
            for (int c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
            if (best == (int)labels[r]) correct++;
        }
        return (double)correct / labels.Length;
    }
}
