using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>
/// The gradient check must catch a wiring error that touches only the smallest gradient entries.
/// The analytic gradient comes from a twin of the function whose smallest-magnitude multipliers are
/// 1.5x too large, the kind of error a wrong index into a small block of a layout produces; the
/// finite differences come from the true function.
/// </summary>
public class GradCheckSensitivityTests : EngineTestBase
{
    private const float H = 1e-2f, Tol = 2e-3f; // GradCheck's defaults for nonlinear ops

    private (Func<Tensor[], Tensor> Truth, Func<Tensor[], Tensor> Wrong) Twins()
    {
        // y = gelu(x) ∘ c with c fixed: dL/dx_i = w_i c_i gelu'(x_i); four entries of c are ~300x smaller.
        var c = new float[12];
        for (int i = 0; i < c.Length; i++) c[i] = (float)(0.5 + Rng.NextDouble() * 0.5) * (i % 2 == 0 ? 1 : -1);
        int[] small = [1, 4, 7, 10];
        foreach (int i in small) c[i] *= 3e-3f;
        var wrong = (float[])c.Clone();
        foreach (int i in small) wrong[i] *= 1.5f;
        var truth = Tensor.FromArray(Dev, c, 3, 4);
        var twin = Tensor.FromArray(Dev, wrong, 3, 4);
        return (t => Ops.Mul(Ops.Gelu(t[0]), truth), t => Ops.Mul(Ops.Gelu(t[0]), twin));
    }

    [Fact]
    public void TheTrueGradientPasses()
    {
        var (truth, _) = Twins();
        GradCheck(truth, truth, [Rand(3, 4)], H, Tol);
    }

    [Fact]
    public void AWrongSmallEntryFailsPerEntryButPassedTheOldMaxScaledRule()
    {
        var (truth, wrong) = Twins();
        var x = Rand(3, 4);
        var (_, entries) = MeasureGradients(wrong, truth, [x], H).Single();

        // The rule this check replaced: each error judged against the tensor's largest gradient.
        double maxAbs = Math.Max(1e-3, entries.Max(e => Math.Abs(e.Analytic)));
        Assert.All(entries, e => Assert.True(e.Error / maxAbs <= Tol, $"[{e.Index}] already failed the old rule"));

        // Per entry, only mis-scaled entries fail, and they do unless their true gradient
        // (w_i c_i gelu'(x_i), with w_i random) is itself down at the loss's rounding level.
        var failing = entries.Where(e => !e.Passes(Tol)).Select(e => e.Index).ToArray();
        Assert.Subset(new HashSet<int>([1, 4, 7, 10]), new HashSet<int>(failing));
        Assert.All(entries.Where(e => e.Index % 3 == 1 && Math.Abs(e.Numeric) > 4 * e.Rounding),
            e => Assert.Contains(e.Index, failing));
        Assert.True(failing.Length >= 3, $"only {failing.Length} of the 4 mis-scaled entries failed");
        Assert.Throws<Xunit.Sdk.XunitException>(() => GradCheck(wrong, truth, [x], H, Tol));
    }
}
