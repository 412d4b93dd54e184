namespace ViTScratch.Tests.Reference;

/// <summary>
/// erf and erfc in double precision, accurate to about 1e-15, for the float64 reference GELU.
/// .NET has no Math.Erf, and the float32 kernels' Abramowitz–Stegun polynomial (|error| 1.5e-7)
/// is exactly what the reference must NOT reuse, or the kernels would be checked against themselves.
///
/// Two classical expansions, each used where it converges fast and loses no bits:
/// - |x| &lt; 2.5: erf(x) = (2/√π) e^{-x²} Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·5···(2n+1)).
///   Every term is positive, so unlike the alternating Maclaurin series there is no cancellation.
/// - |x| ≥ 2.5: the Laplace continued fraction
///   erfc(x) = (e^{-x²}/√π) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))),
///   evaluated bottom-up from a fixed depth. erfc is computed directly, so it keeps its full
///   relative accuracy deep in the tail (erfc(10) ≈ 2e-45), which the reference Phi(x) for very
///   negative x needs.
/// </summary>
public static class ReferenceErf
{
    private const double TwoOverSqrtPi = 1.1283791670955125739;
    private const double InvSqrtPi = 0.56418958354775628695;
    private const double Switch = 2.5;

    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x);
        double r = ax < Switch ? ErfSeries(ax) : 1.0 - ErfcContinuedFraction(ax);
        return x < 0 ? -r : r;
    }

    public static double Erfc(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x >= Switch) return ErfcContinuedFraction(x);
        if (x <= -Switch) return 2.0 - ErfcContinuedFraction(-x);
        return 1.0 - Erf(x);
    }

    /// <summary>Standard normal CDF Φ(x) = erfc(-x/√2) / 2, accurate in both tails.</summary>
    public static double Phi(double x) => 0.5 * Erfc(-x / Math.Sqrt(2.0));

    /// <summary>Standard normal density φ(x).</summary>
    public static double Pdf(double x) => Math.Exp(-0.5 * x * x) / Math.Sqrt(2.0 * Math.PI);

    // Terms t_n = t_{n-1} · 2x² / (2n+1) grow until 2n+1 > 2x² (n ≈ 6 at x = 2.5) and then fall
    // geometrically; stop when a term no longer changes the sum.
    private static double ErfSeries(double x)
    {
        double x2 = x * x, term = x, sum = x;
        for (int n = 1; n < 200; n++)
        {
            term *= 2.0 * x2 / (2 * n + 1);
            sum += term;
            if (term < sum * 1e-17) break;
        }
        return TwoOverSqrtPi * Math.Exp(-x2) * sum;
    }

    // Depth 120 is far more than needed at x ≥ 2.5 (the tail of the fraction is damped like
    // exp(-2x√(2k))); evaluating bottom-up at a fixed depth keeps the code free of Lentz's bookkeeping.
    private static double ErfcContinuedFraction(double x)
    {
        double f = x;
        for (int k = 120; k >= 1; k--) f = x + 0.5 * k / f;
        return InvSqrtPi * Math.Exp(-x * x) / f;
    }
}
