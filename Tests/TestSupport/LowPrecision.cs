using ViTScratch.Kernels;

namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// The input formats of the tensor-core products (TF32, BF16), defined here independently of the
/// kernels' bit tricks, and the error bound of a product computed from them.
///
/// Bound of one output y = alpha sum_k a_k b_k (+ c0) (+ bias) computed with inputs rounded to a
/// format of unit roundoff u (TF32: 10 stored mantissa bits, u = 2^-11; BF16: 7 bits, u = 2^-8):
///   1. rounding: a^ = a (1 + e), b^ = b (1 + f), |e|, |f| <= u, so each product is off by at most
///      (2u + u^2) |a b|; the product of two such inputs (11 x 11 or 8 x 8 significant bits) is
///      exact in float32;
///   2. accumulation: K products plus the start (0, or a split-K partial) summed in float32 in
///      any order, then scaled by alpha, added to c0 and to the bias: at most K + 3 roundings on
///      the way, each of relative size at most 2U (U = 2^-24). 2U, not U: within one mma the tensor
///      core aligns the terms to the largest exponent and truncates (Fasi, Higham, Mikaitis,
///      Pranesh, "Numerical behavior of NVIDIA tensor cores", 2021), a rounding toward zero whose
///      error is below one ulp, i.e. 2U relative; round-to-nearest (the simulator) is within U.
/// So |y - y_exact| <= (2u + u^2)(1 + 2(K + 3) U) |alpha| (|A||B|) + 2(K + 3) U (|alpha| (|A||B|)
/// + |c0| + |bias|). The first term, the format's, grows with the data and not with K; the second
/// is float32's and grows with K. A kernel that reads a wrong element misses by about
/// |alpha| (|A||B|) / K, far above both for the test shapes.
///
/// Against a reference computed from the rounded inputs (<see cref="Round"/> applied on the host)
/// only the second term remains, which catches a misplaced element at any K.
/// </summary>
public static class LowPrecision
{
    /// <summary>Unit roundoff of the format (half its relative spacing): TF32 2^-11, BF16 2^-8.</summary>
    public static double UnitRoundoff(MathPrecision p) => p switch
    {
        MathPrecision.Tf32 => 1.0 / (1 << 11),
        MathPrecision.Bf16 => 1.0 / (1 << 8),
        _ => Tol.U,
    };

    /// <summary>Bound of one output (see the class summary).</summary>
    public static double Bound(MathPrecision p, int k, double magnitudeAB, double magnitudeAll)
    {
        double u = UnitRoundoff(p), acc = 2.0 * (k + 3) * Tol.U;
        return (2 * u + u * u) * (1 + acc) * magnitudeAB + acc * magnitudeAll;
    }

    /// <summary>x rounded to the format: TF32 to nearest with ties away from zero (cvt.rna), BF16 ties to even.</summary>
    public static float Round(MathPrecision p, float x) => p switch
    {
        MathPrecision.Tf32 => RoundTo(x, 10, tiesToEven: false),
        MathPrecision.Bf16 => RoundTo(x, 7, tiesToEven: true),
        _ => x,
    };

    /// <summary>
    /// x rounded to a binary format with <paramref name="mantissaBits"/> stored bits and float32's
    /// exponent range, computed on the value (exactly, in double), not on its bit pattern.
    /// </summary>
    public static float RoundTo(float x, int mantissaBits, bool tiesToEven)
    {
        if (x == 0 || !float.IsFinite(x)) return x;
        double v = Math.Abs((double)x);
        int e = Math.Max(Math.ILogB(v), -126);                  // subnormals share the smallest normal's spacing
        double ulp = Math.ScaleB(1.0, e - mantissaBits);
        double q = v / ulp, fl = Math.Floor(q), frac = q - fl;  // exact: q has at most 24 significant bits
        double r = frac > 0.5 || (frac == 0.5 && (!tiesToEven || fl % 2 == 1)) ? fl + 1 : fl;
        return (float)Math.CopySign(r * ulp, x);
    }
}
