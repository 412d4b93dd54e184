using System.Text;

namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// Comparison of float32 results with the float64 reference, element by element, against a
/// per-element error bound. The bounds used by the tests are forward-error bounds in units of
/// <see cref="U"/>, the unit roundoff of float32: a correct kernel stays far inside them, while a
/// kernel that reads a wrong element, drops a term or overwrites an accumulator misses by a large
/// multiple of the data's own magnitude.
/// </summary>
public static class Tol
{
    /// <summary>Unit roundoff of float32: |fl(a op b) - (a op b)| ≤ U |a op b|.</summary>
    public const double U = 1.0 / (1 << 24);

    /// <summary>
    /// Fails unless every actual[i] is within bound(i) of expected[i]. An expected NaN (a poisoned
    /// element the reference never wrote) must stay NaN in the backend too; an actual NaN or
    /// infinity where a number was expected always fails.
    /// </summary>
    public static void Check(string what, double[] expected, float[] actual, Func<int, double> bound)
    {
        if (expected.Length != actual.Length)
            throw new Xunit.Sdk.XunitException($"{what}: length {actual.Length}, expected {expected.Length}");
        int bad = 0, firstBad = -1;
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            bool ok;
            if (double.IsNaN(e)) ok = double.IsNaN(a);
            else if (!double.IsFinite(a)) ok = false;
            else
            {
                double err = Math.Abs(a - e), b = bound(i);
                ok = err <= b;
                double ratio = b > 0 ? err / b : (err > 0 ? double.PositiveInfinity : 0);
                if (ratio > worst) { worst = ratio; worstAt = i; }
            }
            if (!ok) { bad++; if (firstBad < 0) firstBad = i; }
        }
        if (bad == 0) return;
        var sb = new StringBuilder();
        sb.Append($"{what}: {bad} of {expected.Length} elements out of tolerance. ");
        sb.Append($"First at [{firstBad}]: expected {expected[firstBad]:R}, got {actual[firstBad]:R}");
        if (!double.IsNaN(expected[firstBad])) sb.Append($", bound {bound(firstBad):G4}");
        if (worstAt >= 0) sb.Append($". Worst error/bound ratio {worst:G4} at [{worstAt}]: expected {expected[worstAt]:R}, got {actual[worstAt]:R}");
        throw new Xunit.Sdk.XunitException(sb.ToString());
    }

    /// <summary>Bit-exact comparison (values that must pass through untouched); NaN matches NaN.</summary>
    public static void Exact(string what, double[] expected, float[] actual) => Check(what, expected, actual, _ => 0);
}
