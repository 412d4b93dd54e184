using ViTScratch.Engine;
using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>The whole model's backward pass against central finite differences of its loss.</summary>
public class GradientCheckTests : ModelTestBase
{
    [Theory]
    [InlineData(Pooling.Cls, 0f)]
    [InlineData(Pooling.Mean, 0f)]
    [InlineData(Pooling.Cls, 0.2f)] // fixed Step: the masks are a function of (seed, step, site), so the loss is a fixed smooth function
    public void EveryParameterMatchesFiniteDifferences(Pooling pool, float dropout)
    {
        var config = TinyConfig(pool, dropout, embDropout: dropout);
        var vit = new ViT(config, Dev, seed: 3);
        vit.Step = 17;

        // The default init (std 0.02) makes attention almost uniform and many gradients ~1e-6, below
        // what float32 finite differences resolve. Spread the values so every path carries signal:
        // LayerNorm gains around 1, everything else uniform in ±0.5.
        foreach (var p in vit.Parameters())
        {
            var v = RandomValues(p.Length, 0.5);
            if (p.Init == ParameterInit.Ones) for (int i = 0; i < v.Length; i++) v[i] += 1f;
            p.Value.CopyFrom(v);
        }

        var images = RandomImages(config, batch: 3);
        var labels = RandomLabels(3, config.NumClasses);
        Tensor Loss() => Ops.Sum(Ops.CrossEntropy(vit.Forward(images), labels)); // summed, not averaged: larger gradients, same relative error

        vit.ZeroGrad();
        Loss().Backward();

        double LossValue()
        {
            using var scope = new TensorScope();
            using var noGrad = Tensor.NoGrad();
            return Loss().Item();
        }

        // h = 1e-2: the truncation error O(h²·f''') is ~1e-4 relative; float32 rounding of the loss
        // (|L| ~ 10, ulp ~1e-6) divided by 2h adds ~5e-5 absolute. Errors are measured against the
        // parameter's largest gradient (as EngineTestBase.GradCheck does), so 2e-3 relative leaves a
        // margin of ~10x over both while a wrong index or a missing term (errors of order 1) fails.
        const float h = 1e-2f, tol = 2e-3f;
        int checkedEntries = 0;
        foreach (var (name, p) in vit.NamedParameters())
        {
            var analytic = p.Value.GradToArray();
            double maxAbs = 1e-3;
            foreach (var g in analytic) maxAbs = Math.Max(maxAbs, Math.Abs(g));
            Assert.True(maxAbs > 1e-3, $"{name}: every gradient is ~0, so the check would prove nothing");

            // Small parameters in full; for larger ones 24 random entries (a wrong layout shows up in most entries).
            var indices = p.Length <= 64 ? Enumerable.Range(0, p.Length) : Enumerable.Range(0, 24).Select(_ => Rng.Next(p.Length));
            var values = p.Value.ToArray();
            foreach (int i in indices)
            {
                float orig = values[i];
                values[i] = orig + h; p.Value.CopyFrom(values); double up = LossValue();
                values[i] = orig - h; p.Value.CopyFrom(values); double down = LossValue();
                values[i] = orig; p.Value.CopyFrom(values);
                double numeric = (up - down) / (2 * h);
                double err = Math.Abs(numeric - analytic[i]) / maxAbs;
                Assert.True(err <= tol, $"{name}[{i}] {ShapeOf.Format(p.Shape)}: analytic {analytic[i]}, numeric {numeric}, relative error {err:E2} > {tol:E1}");
                checkedEntries++;
            }
        }
        Assert.True(checkedEntries > 500);
    }
}
