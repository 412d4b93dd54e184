using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Tests.TestSupport;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The whole model's backward pass against central finite differences of its float32 loss, judged
/// entry by entry like the engine checks (<see cref="GradEntry"/>): |D(h) - g| ≤ tol·|g| + Richardson
/// truncation + the rounding term of a whole float32 forward (<see cref="LossRoundingNoise"/>).
/// </summary>
public class GradientCheckTests : ModelTestBase
{
    // h = 1e-2, Richardson against D(2h): the truncation estimate stays ≤ 3.2e-4 (median 6e-5)
    // while the rounding term (5·0.95·σ/h, σ ≈ 3-6e-7) is ~1.5-3e-4. tol covers the float32
    // backward's own rounding relative to the entry, as in the engine's nonlinear checks.
    private const float H = 1e-2f, Tol = 2e-3f;

    private sealed record ParameterCheck(string Name, int[] Shape, double MaxAbs, GradEntry[] Entries);

    private sealed record ModelCheck(double Sigma, ParameterCheck[] Parameters);

    // Each row is measured once per run: the sensitivity and noise tests reuse the (Cls, 0) row.
    private static readonly Dictionary<(Pooling, float), ModelCheck> Measured = new();

    [Theory]
    [InlineData(Pooling.Cls, 0f)]
    [InlineData(Pooling.Mean, 0f)]
    [InlineData(Pooling.Cls, 0.2f)] // fixed Step: the masks are a function of (seed, step, site), so the loss is a fixed smooth function
    public void EveryParameterMatchesFiniteDifferences(Pooling pool, float dropout)
    {
        var check = Measure(pool, dropout);
        AssertAllPass(check.Parameters);
        Assert.True(check.Parameters.Sum(p => p.Entries.Length) > 500);
    }

    [Fact]
    public void AWrongSmallEntryFailsPerEntryButPassedTheOldMaxScaledRule()
    {
        var check = Measure(Pooling.Cls, 0f);

        // Small entries: |g| < 2% of their tensor's largest, where a 10% error stays under the old
        // rule's 2e-3·max. Of those, the ones whose 10% is at least twice the entry's own bound must
        // fail when scaled by 1.1 (the wrong value's error is ≥ 0.1|g| - bound > bound).
        var detectable = new List<(ParameterCheck P, GradEntry Wrong)>();
        foreach (var p in check.Parameters)
            foreach (var e in p.Entries.Where(e => Math.Abs(e.Analytic) < 0.02 * p.MaxAbs && 0.1 * Math.Abs(e.Analytic) >= 2 * e.Bound(Tol)))
                detectable.Add((p, e with { Analytic = 1.1 * e.Analytic }));
        Assert.True(detectable.Count >= 10, $"only {detectable.Count} small entries are far enough above the rounding term to test");
        Assert.All(detectable, d =>
        {
            Assert.True(d.Wrong.Error / d.P.MaxAbs <= Tol, $"{d.P.Name}[{d.Wrong.Index}] already failed the old rule");
            Assert.False(d.Wrong.Passes(Tol), $"{d.P.Name}[{d.Wrong.Index}]: g {d.Wrong.Analytic / 1.1:E3} scaled by 1.1 passed");
        });

        // One wrong entry in one parameter makes the whole check fail.
        var (victim, wrong) = detectable[0];
        var broken = check.Parameters.Select(p => p != victim ? p
            : p with { Entries = p.Entries.Select(e => e.Index == wrong.Index ? wrong : e).ToArray() }).ToArray();
        Assert.Throws<Xunit.Sdk.XunitException>(() => AssertAllPass(broken));
    }

    /// <summary>
    /// σ̂ against the exact rounding error of the float32 loss, ε = L̂ - L with L from the float64
    /// transcription of the model (<see cref="ReferenceForwardTests"/>), at points on a fresh line:
    /// every |ε| inside the 5σ̂ the check allows, and their spread within 1.5x of σ̂ either way.
    /// </summary>
    [Fact]
    public void NoiseEstimateMatchesTheFloat64Reference()
    {
        var (vit, images, labels) = Build(Pooling.Cls, 0f);
        var parameters = vit.Parameters().ToList();
        double sigma = LossRoundingNoise.Measure(parameters, () => LossValue(vit, images, labels), Rng);
        var origin = parameters.Select(p => p.Value.ToArray()).ToArray();
        var direction = parameters.Select(p => RandomValues(p.Length, 1e-2).Select(v => (double)v).ToArray()).ToArray();
        var pixels = images.ToArray();
        var classes = labels.ToArray().Select(v => (int)v).ToArray();

        var errors = new List<double>();
        for (int k = 0; k < 64; k++)
        {
            LossRoundingNoise.MoveTo(parameters, origin, direction, -1 + 2.0 * k / 63);
            var logits = ReferenceForwardTests.Reference(vit.Config, vit.StateDict().ToDictionary(t => t.Name, t => t.Data), pixels, classes.Length);
            errors.Add(LossValue(vit, images, labels) - CrossEntropySum(logits, classes, vit.Config.NumClasses));
        }
        double worst = errors.Max(Math.Abs), rms = Math.Sqrt(errors.Average(e => e * e));
        Assert.True(worst <= LossRoundingNoise.Lambda * sigma, $"|ε| reached {worst:E2}, over {LossRoundingNoise.Lambda}σ̂ = {LossRoundingNoise.Lambda * sigma:E2}");
        Assert.InRange(rms / sigma, 1 / 1.5, 1.5);
    }

    private static void AssertAllPass(IEnumerable<ParameterCheck> parameters)
    {
        foreach (var p in parameters)
        {
            var bad = p.Entries.Where(e => !e.Passes(Tol)).ToList();
            if (bad.Count == 0) continue;
            var worst = bad.MaxBy(e => e.Error / e.Bound(Tol))!;
            throw new Xunit.Sdk.XunitException(
                $"{p.Name} {ShapeOf.Format(p.Shape)}: {bad.Count} of {p.Entries.Length} entries out of bound. Worst [{worst.Index}]: " +
                $"analytic {worst.Analytic:R}, numeric {worst.Numeric:R} (2h: {worst.NumericOther:R}), error {worst.Error:E2} > bound " +
                $"{worst.Bound(Tol):E2} (relative {Tol:E1}·|analytic| + truncation {worst.Truncation:E2} + rounding {worst.Rounding:E2})");
        }
    }

    private (ViT Vit, Tensor Images, Tensor Labels) Build(Pooling pool, float dropout)
    {
        var config = TinyConfig(pool, dropout, embDropout: dropout);
        var vit = new ViT(config, Dev, seed: 3) { Step = 17 };

        // The default init (std 0.02) makes attention almost uniform and many gradients ~1e-6, below
        // what float32 finite differences resolve. Spread the values so every path carries signal:
        // LayerNorm gains around 1, everything else uniform in ±0.5.
        foreach (var p in vit.Parameters())
        {
            var v = RandomValues(p.Length, 0.5);
            if (p.Init == ParameterInit.Ones) for (int i = 0; i < v.Length; i++) v[i] += 1f;
            p.Value.CopyFrom(v);
        }
        return (vit, RandomImages(config, batch: 3), RandomLabels(3, config.NumClasses));
    }

    // Summed, not averaged: larger gradients, same relative error.
    private static Tensor Loss(ViT vit, Tensor images, Tensor labels) => Ops.Sum(Ops.CrossEntropy(vit.Forward(images), labels));

    private static double LossValue(ViT vit, Tensor images, Tensor labels)
    {
        using var scope = new TensorScope();
        using var noGrad = Tensor.NoGrad();
        return Loss(vit, images, labels).Item();
    }

    private static double CrossEntropySum(double[] logits, int[] labels, int classes)
    {
        double sum = 0;
        for (int b = 0; b < labels.Length; b++)
        {
            var row = logits.AsSpan(b * classes, classes);
            double max = double.NegativeInfinity, exp = 0;
            foreach (double z in row) max = Math.Max(max, z);
            foreach (double z in row) exp += Math.Exp(z - max);
            sum += max + Math.Log(exp) - row[labels[b]];
        }
        return sum;
    }

    private ModelCheck Measure(Pooling pool, float dropout)
    {
        lock (Measured)
        {
            if (Measured.TryGetValue((pool, dropout), out var done)) return done;
            var (vit, images, labels) = Build(pool, dropout);
            vit.ZeroGrad();
            Loss(vit, images, labels).Backward();
            double Value() => LossValue(vit, images, labels);
            double sigma = LossRoundingNoise.Measure(vit.Parameters().ToList(), Value, Rng);

            var checks = new List<ParameterCheck>();
            foreach (var (name, p) in vit.NamedParameters())
            {
                var analytic = p.Value.GradToArray();
                double maxAbs = analytic.Max(Math.Abs);
                Assert.True(maxAbs > 1e-3, $"{name}: every gradient is ~0, so the check would prove nothing");

                // Small parameters in full; for larger ones 24 random entries (a wrong layout shows up in most entries).
                var indices = p.Length <= 64 ? Enumerable.Range(0, p.Length) : Enumerable.Range(0, 24).Select(_ => Rng.Next(p.Length)).Distinct();
                var values = p.Value.ToArray();
                var entries = new List<GradEntry>();
                foreach (int i in indices)
                {
                    float orig = values[i];
                    // The quotient divides by the distance between the float32 points evaluated.
                    (double Quotient, double Distance) Central(float step)
                    {
                        float up = orig + step, down = orig - step;
                        values[i] = up; p.Value.CopyFrom(values); double lu = Value();
                        values[i] = down; p.Value.CopyFrom(values); double ld = Value();
                        values[i] = orig; p.Value.CopyFrom(values);
                        return ((lu - ld) / ((double)up - down), (double)up - down);
                    }
                    var (d1, s1) = Central(H);
                    var (d2, s2) = Central(2 * H);
                    entries.Add(new GradEntry(i, analytic[i], d1, d2, 2, LossRoundingNoise.Term(sigma, s1, s2)));
                }
                checks.Add(new ParameterCheck(name, p.Shape, maxAbs, entries.ToArray()));
            }
            return Measured[(pool, dropout)] = new ModelCheck(sigma, checks.ToArray());
        }
    }
}
