namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// One entry of a gradient check: the analytic value g and the central differences D(h) and
/// D(r·h) of the float32 forward, judged entry by entry by |D(h) - g| ≤ tol·|g| + truncation + rounding, where
/// <list type="bullet">
/// <item>tol·|g| covers the float32 rounding of the backward pass itself (relative to the entry,
/// not to the tensor's largest entry, so a wrong small entry cannot hide behind a large one);</item>
/// <item>truncation is the O(h²) term of D(h), estimated by Richardson from the data:
/// D(h) = g + c h² + O(h⁴) and D(r h) = g + c r² h² + O(h⁴), so c h² = (D(r h) - D(h)) / (r² - 1)
/// (r = 1/2: (4/3)(D(h) - D(h/2))). The difference also carries both quotients' rounding;</item>
/// <item>rounding is what the float32 rounding of the loss evaluations can add beyond that, given
/// by the check (one op: <c>EngineTestBase.OpRounding</c>; the whole model: <c>LossRoundingNoise.Term</c>).</item>
/// </list>
/// </summary>
public sealed record GradEntry(int Index, double Analytic, double Numeric, double NumericOther, double OtherStepRatio, double Rounding)
{
    public double Error => Math.Abs(Numeric - Analytic);

    public double Truncation => Math.Abs(NumericOther - Numeric) / Math.Abs(OtherStepRatio * OtherStepRatio - 1);

    public double Bound(double tol) => tol * Math.Abs(Analytic) + Truncation + Rounding;

    public bool Passes(double tol) => Error <= Bound(tol);
}
