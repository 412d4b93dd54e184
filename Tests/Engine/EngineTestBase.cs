using ViTScratch.Engine;
using ViTScratch.Tests.TestSupport;

namespace ViTScratch.Tests.Engine;

/// <summary>Helpers for engine-level tests, which run on the CPU backend.</summary>
public abstract class EngineTestBase : IDisposable
{
    protected readonly Device Dev = Device.Create("cpu");
    protected readonly Random Rng = new(1234);

    protected Tensor Rand(params int[] shape) => Rand(true, shape);

    protected Tensor Rand(bool requiresGrad, params int[] shape)
    {
        var values = new float[ShapeOf.Count(shape)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(Rng.NextDouble() * 2 - 1);
        var t = Tensor.FromArray(Dev, values, shape);
        t.RequiresGrad = requiresGrad;
        return t;
    }

    /// <summary>
    /// Checks d(sum(w ∘ f(inputs)))/d(input) for every input, entry by entry, against central
    /// differences of the float32 forward (see <see cref="GradEntry"/> for the bound). The step h
    /// and the relative tolerance are chosen per op by the caller: ops linear in the perturbed input
    /// have no truncation error, so only the float32 rounding of the analytic gradient (tol) and of
    /// the two loss evaluations (the rounding term) remain. The kernels' own backward math is
    /// verified in float64 elsewhere; this checks the engine's wiring.
    /// </summary>
    protected void GradCheck(Func<Tensor[], Tensor> f, Tensor[] inputs, float h = 1e-2f, float tol = 2e-3f) =>
        GradCheck(f, f, inputs, h, tol);

    /// <summary>
    /// As <see cref="GradCheck(Func{Tensor[], Tensor}, Tensor[], float, float)"/>, with the analytic
    /// gradient taken from <paramref name="analyticOf"/> and the finite differences from
    /// <paramref name="numericOf"/>: the same function in every real check; a deliberately wrong
    /// twin in the test that shows the check catches wiring errors.
    /// </summary>
    protected void GradCheck(Func<Tensor[], Tensor> analyticOf, Func<Tensor[], Tensor> numericOf, Tensor[] inputs, float h, float tol)
    {
        foreach (var (name, entries) in MeasureGradients(analyticOf, numericOf, inputs, h))
        {
            var bad = entries.Where(e => !e.Passes(tol)).ToList();
            if (bad.Count == 0) continue;
            var worst = bad.MaxBy(e => e.Error / e.Bound(tol))!;
            throw new Xunit.Sdk.XunitException(
                $"{name}: {bad.Count} of {entries.Length} entries out of bound. Worst [{worst.Index}]: analytic {worst.Analytic:R}, " +
                $"numeric {worst.Numeric:R} (h/2: {worst.NumericOther:R}), error {worst.Error:E2} > bound {worst.Bound(tol):E2} " +
                $"(relative {tol:E1}·|analytic| + truncation {worst.Truncation:E2} + rounding {worst.Rounding:E2})");
        }
    }

    /// <summary>
    /// Per input: every entry's analytic gradient, its central differences at h and h/2, and the
    /// error terms derived from the data. L = Σ w_j y_j with random w, computed in double from the
    /// float32 outputs.
    /// </summary>
    protected List<(string Name, GradEntry[] Entries)> MeasureGradients(
        Func<Tensor[], Tensor> analyticOf, Func<Tensor[], Tensor> numericOf, Tensor[] inputs, float h)
    {
        Tensor probe = numericOf(inputs);
        var w = new float[probe.Length];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(Rng.NextDouble() * 2 - 1);
        var weights = Tensor.FromArray(Dev, w, probe.Shape);

        foreach (var x in inputs) if (x.RequiresGrad) x.ZeroGrad();
        var loss = Ops.Sum(Ops.Mul(analyticOf(inputs), weights));
        loss.Backward();

        // The loss and Σ_j |w_j y_j|, the scale of its float32 rounding.
        (double Loss, double Magnitude) Evaluate()
        {
            using var _ = Tensor.NoGrad();
            var y = numericOf(inputs).ToArray();
            double s = 0, m = 0;
            for (int i = 0; i < y.Length; i++) { s += (double)y[i] * w[i]; m += Math.Abs((double)y[i] * w[i]); }
            return (s, m);
        }

        var result = new List<(string, GradEntry[])>();
        foreach (var x in inputs)
        {
            if (!x.RequiresGrad) continue;
            var analytic = x.GradToArray();
            var values = x.ToArray();
            var entries = new GradEntry[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                float orig = values[i];
                // The step actually taken: orig ± h rounds to float32, so the quotient divides by
                // the distance between the two points evaluated, not by 2h.
                (double Quotient, double Magnitude) Central(float step)
                {
                    float up = orig + step, down = orig - step;
                    values[i] = up; x.CopyFrom(values); var (lu, mu) = Evaluate();
                    values[i] = down; x.CopyFrom(values); var (ld, md) = Evaluate();
                    values[i] = orig; x.CopyFrom(values);
                    return ((lu - ld) / ((double)up - down), Math.Max(mu, md));
                }
                var (dh, magH) = Central(h);
                var (dh2, magH2) = Central(h / 2);
                entries[i] = new GradEntry(i, analytic[i], dh, dh2, 0.5, OpRounding(Math.Max(magH, magH2), h));
            }
            result.Add(($"{x.Name ?? "input"} of {ShapeOf.Format(x.Shape)}", entries));
        }
        return result;
    }

    /// <summary>
    /// The float32 rounding of one op's loss evaluations in a quotient. Each evaluation rounds every
    /// output y_j to float32 at least once, |δy_j| ≤ U |y_j|, so L(x±s) errs by U Σ_j |w_j y_j| and the
    /// quotient at step s by 2 U Σ|w y| / 2s; taken at s = h/2, the noisier of the two quotients:
    /// 2 U Σ|w y| / h. Roundings earlier in an op's chain follow the same path in L(x+s) and L(x−s)
    /// and largely cancel; what remains is also inside the Richardson difference. Across every check
    /// in OpGradientTests the largest error is 0.105 of the bound this gives. (A whole model's
    /// forward is another matter: see Tests/Model/LossRoundingNoise.cs.)
    /// </summary>
    private static double OpRounding(double lossMagnitude, float h) => 2 * Tol.U * lossMagnitude / h;

    public void Dispose() => Dev.Dispose();
}
