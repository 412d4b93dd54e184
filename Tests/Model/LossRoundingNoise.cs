using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The float32 rounding noise of a whole model's loss, and the term it adds to a finite-difference
/// gradient check (<see cref="TestSupport.GradEntry"/>'s rounding).
///
/// <para><b>What the noise is.</b> The float32 forward returns L̂(x) = L(x) + ε(x), where ε sums every
/// rounding of the forward carried to the loss: ε ≈ Σ_j (∂L/∂y_j)·δ_j over thousands of intermediate
/// values y_j, each |δ_j| ≤ k_j·U·Σ|terms of y_j| (k_j roundings in series, U = 2^-24). Adding up
/// the worst case of every term, c·U·Σ|terms| over the whole graph, is far above what happens:
/// even a rough version (~260 roundings in series from the patch embedding to the head, each U of
/// the head's Σ|W·a| ≈ 24) is ~4e-4, while |ε| stayed ≤ 1.9e-6 against the float64 reference over
/// 1,400 points; over 2h that is looser than the max-scaled rule it replaces. The δ_j are instead modelled as
/// independent and of mean zero (the probabilistic rounding analysis of Higham and Mary, 2019), so
/// ε is close to normal with σ² = Σ_j (∂L/∂y_j)²·Var(δ_j). The engine keeps no intermediates to sum
/// that over, so σ is measured: along a line x(t) = x₀ + t·d through every parameter (d uniform in
/// ±1e-4, t in [-1, 1], <see cref="Points"/> points) a cubic least-squares fit removes the smooth L
/// and the residuals are samples of ε: σ̂² = RSS / (n - 4). Moving every parameter re-rounds every
/// operation of the forward; moving one entry by ±h re-rounds only what lies downstream of it, so the
/// whole-model σ̂ covers each entry (per tensor it measured 3.9e-7 for mlp_head to 6.4e-7, whole 5.4e-7).
/// For the test model σ̂ ≈ U·|L|: the c·U·Σ|terms| estimate with the terms of the loss's own last
/// sums and c ≈ 1 — those roundings dominate, the upstream ones reach L scaled by gradients ~0.1.
/// <see cref="GradientCheckTests.NoiseEstimateMatchesTheFloat64Reference"/> checks σ̂ against the
/// exact ε of the float64 transcription.</para>
///
/// <para><b>What it adds to the check.</b> With D(h) = g + c h² + n₁ and D(2h) = g + 4 c h² + n₂ (n the
/// quotients' noise), the Richardson term T = |D(2h) - D(h)| / 3 = |c h² + (n₂ - n₁)/3|, so
/// |D(h) - g| - T ≤ |4 n₁ - n₂| / 3. Over the four independent evaluations (steps Δ₁ ≈ 2h, Δ₂ ≈ 4h),
/// n₁ = (ε₁⁺ - ε₁⁻)/Δ₁ and n₂ = (ε₂⁺ - ε₂⁻)/Δ₂, so sd((4 n₁ - n₂)/3) = σ·√(32/Δ₁² + 2/Δ₂²) / 3
/// (= 0.95 σ/h; Richardson against D(h/2) instead would give 1.90 σ/h, which is why the model check
/// takes 2h). The term is <see cref="Lambda"/> = 5 of those: for a normal variable
/// P(|Z| > 5) = 5.7e-7 per entry, under 2e-3 over the ~1,900 entries of the three model checks.</para>
/// </summary>
public static class LossRoundingNoise
{
    /// <summary>Standard deviations allowed: 5σ, see the class comment.</summary>
    public const double Lambda = 5;

    /// <summary>Points on the line; σ̂ from 256 residuals is within about ±5% of σ.</summary>
    public const int Points = 256;

    /// <summary>The bound on |4 n₁ - n₂| / 3 for one entry whose quotients at h and 2h spanned Δ₁ and Δ₂.</summary>
    public static double Term(double sigma, double span1, double span2) =>
        Lambda * sigma * Math.Sqrt(32 / (span1 * span1) + 2 / (span2 * span2)) / 3;

    /// <summary>
    /// σ̂ of <paramref name="loss"/>'s float32 rounding, from its values along a random line through
    /// every parameter (restored afterwards). Also fails if the loss is not a deterministic function
    /// of the parameters: noise from anything but rounding would loosen the check it feeds.
    /// </summary>
    public static double Measure(IReadOnlyList<Parameter> parameters, Func<double> loss, Random rng)
    {
        double first = loss(), again = loss();
        if (first != again)
            throw new Xunit.Sdk.XunitException($"the loss is not deterministic: {first:R} then {again:R} at the same parameters");

        var origin = parameters.Select(p => p.Value.ToArray()).ToArray();
        var direction = parameters.Select(p => Enumerable.Range(0, p.Length).Select(_ => (rng.NextDouble() * 2 - 1) * 1e-4).ToArray()).ToArray();
        var t = new double[Points];
        var y = new double[Points];
        for (int k = 0; k < Points; k++)
        {
            t[k] = -1 + 2.0 * k / (Points - 1);
            MoveTo(parameters, origin, direction, t[k]);
            y[k] = loss();
        }
        for (int j = 0; j < parameters.Count; j++) parameters[j].Value.CopyFrom(origin[j]);
        return Math.Sqrt(CubicResidualSumOfSquares(t, y) / (Points - 4));
    }

    /// <summary>Sets every parameter to origin + t·direction (rounded to float32).</summary>
    public static void MoveTo(IReadOnlyList<Parameter> parameters, float[][] origin, double[][] direction, double t)
    {
        for (int j = 0; j < parameters.Count; j++)
        {
            var v = new float[origin[j].Length];
            for (int i = 0; i < v.Length; i++) v[i] = (float)(origin[j][i] + t * direction[j][i]);
            parameters[j].Value.CopyFrom(v);
        }
    }

    /// <summary>Σ (y - fit)² for the least-squares cubic in t (normal equations, Gauss-Jordan).</summary>
    private static double CubicResidualSumOfSquares(double[] t, double[] y)
    {
        var a = new double[4, 5];
        for (int k = 0; k < t.Length; k++)
            for (int r = 0; r < 4; r++)
            {
                for (int c = 0; c < 4; c++) a[r, c] += Math.Pow(t[k], r + c);
                a[r, 4] += Math.Pow(t[k], r) * y[k];
            }
        for (int r = 0; r < 4; r++)
            for (int other = 0; other < 4; other++)
            {
                if (other == r) continue;
                double f = a[other, r] / a[r, r];
                for (int c = 0; c < 5; c++) a[other, c] -= f * a[r, c];
            }
        double rss = 0;
        for (int k = 0; k < t.Length; k++)
        {
            double fit = 0;
            for (int r = 0; r < 4; r++) fit += Math.Pow(t[k], r) * a[r, 4] / a[r, r];
            rss += (y[k] - fit) * (y[k] - fit);
        }
        return rss;
    }
}
