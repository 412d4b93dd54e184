namespace ViTScratch.Tests.Reference;

/// <summary>
/// Central finite differences in float64: dL/dx_i ≈ (L(x + h e_i) - L(x - h e_i)) / 2h.
/// With h = 1e-5 the truncation error is about h² L'''/6 ≈ 1e-11 and the cancellation error about
/// 1e-16 |L| / h ≈ 1e-11 |L|, both far below the 1e-6 relative tolerance, so a wrong analytic
/// gradient (a missing term, a wrong sign, a transposed index) cannot pass.
/// </summary>
public static class FiniteDifference
{
    public const double H = 1e-5;
    public const double RelTol = 1e-6;

    /// <summary>
    /// Checks analytic[i] against the central difference of <paramref name="loss"/> (which must read
    /// <paramref name="x"/>) for every element, or for an even sample of at most maxSamples.
    /// The error is relative to max(|analytic|, |fd|, 1% of the largest analytic entry), so
    /// entries that are (nearly) zero, e.g. dropped by dropout, are judged on the tensor's scale.
    /// </summary>
    public static void Verify(string what, double[] x, double[] analytic, Func<double> loss, int maxSamples = 400)
    {
        double scale = 0;
        foreach (double a in analytic) scale = Math.Max(scale, Math.Abs(a));
        if (!(scale > 0)) throw new Xunit.Sdk.XunitException($"{what}: the analytic gradient is all zero; the test would prove nothing");
        int stride = Math.Max(1, (x.Length + maxSamples - 1) / maxSamples);
        for (int i = 0; i < x.Length; i += stride)
        {
            double saved = x[i];
            x[i] = saved + H;
            double lp = loss();
            x[i] = saved - H;
            double lm = loss();
            x[i] = saved;
            double fd = (lp - lm) / (2 * H);
            double denom = Math.Max(Math.Max(Math.Abs(analytic[i]), Math.Abs(fd)), 0.01 * scale);
            double rel = Math.Abs(analytic[i] - fd) / denom;
            if (!(rel <= RelTol))
                throw new Xunit.Sdk.XunitException(
                    $"{what}[{i}]: analytic {analytic[i]:R}, finite difference {fd:R}, relative error {rel:G3} > {RelTol}");
        }
    }

    /// <summary>L = Σ w ∘ y: a random linear functional, so dL/dy = w exercises every output element.</summary>
    public static double Dot(double[] w, double[] y)
    {
        double s = 0;
        for (int i = 0; i < w.Length; i++) s += w[i] * y[i];
        return s;
    }

    /// <summary>The gradient a backward pass added on top of the random values the buffer started with.</summary>
    public static double[] Added(double[] after, double[] before)
    {
        var d = new double[after.Length];
        for (int i = 0; i < d.Length; i++) d[i] = after[i] - before[i];
        return d;
    }
}
