namespace ViTScratch.Kernels;

/// <summary>
/// erf for float32 kernels: Abramowitz and Stegun 7.1.26. Its error is below 1.5e-7 in exact
/// arithmetic and below about 4.3e-7 when evaluated in float32 (1 − poly·e^(−x²) cancels near 0),
/// which is well under what GELU's float32 tolerance needs. One polynomial and one exp, so the GPU
/// and SIMD versions compute the same formula.
/// </summary>
internal static class Erf
{
    public const float P = 0.3275911f;
    public const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;

    public static float Of(float x)
    {
        float ax = MathF.Abs(x);
        float t = 1f / (1f + P * ax);
        float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        float r = 1f - poly * MathF.Exp(-ax * ax);
        return x < 0 ? -r : r;
    }
}
