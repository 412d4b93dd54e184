using ViTScratch.Engine;
using ViTScratch.Tests.TestSupport;
using R = ViTScratch.Tests.Reference.ReferenceKernels;

namespace ViTScratch.Tests.Engine;

/// <summary>
/// Forward values of the engine ops whose gradient checks cannot see a wrong constant: GradCheck
/// compares an op's backward with its own forward, so a scale that is wrong in both (Sub adding,
/// Mean multiplying by n) passes it. Each value here is checked against the float64 definition
/// with a bound derived from float32 rounding. (Found by mutation testing.)
/// </summary>
public class OpValueTests : EngineTestBase
{
    private static double[] D(Tensor t) => t.ToArray().ToDouble();

    [Fact]
    public void SubSubtractsWithEveryBroadcast()
    {
        var a = Rand(2, 3, 4); var bias = Rand(4); var same = Rand(2, 3, 4); var scalar = Rand(1);
        // One float32 rounding of a - b: |error| ≤ U |a - b|.
        void Check(Tensor b)
        {
            var expected = R.Broadcast(a.Shape, D(a), a.Shape, D(b), b.Shape, multiply: false, alpha: -1);
            Tol.Check($"Sub by {ShapeOf.Format(b.Shape)}", expected, Ops.Sub(a, b).ToArray(), i => Tol.U * Math.Abs(expected[i]));
        }
        Check(bias); Check(same); Check(scalar);
        Check(Rand(1, 2, 3, 4)); // a's shape behind a leading 1: a broadcast as long as a (found by mutation testing: `<=` → `<`)
    }

    // Ops.Dropout must drop: its gradient check passes for any mask, and a dropout that returned its
    // input for every p > 0 survived mutation testing. 2^14 entries at p = 0.5: the dropped count is
    // within 5 sigma (320) of 8192; the kept ones are x / (1 - p) = 2x exactly.
    [Fact]
    public void DropoutDropsAtItsRate()
    {
        var x = Tensor.FromArray(Dev, Enumerable.Range(0, 1 << 14).Select(i => 1f + i % 7).ToArray(), 1 << 14);
        var y = Ops.Dropout(x, 0.5f, 99).ToArray();
        var xs = x.ToArray();
        Assert.InRange(y.Count(v => v == 0), 8192 - 320, 8192 + 320);
        Assert.All(Enumerable.Range(0, y.Length).Where(i => y[i] != 0), i => Assert.Equal(2 * xs[i], y[i]));
    }

    [Fact]
    public void MeanAndSumOfAll()
    {
        var x = Rand(3, 7);
        double sum = D(x).Sum(), abs = D(x).Abs().Sum();
        // A float32 sum of n terms errs by at most (n - 1) U Σ|x|; the mean's 1/n multiplies in one more rounding.
        Assert.InRange(Ops.Sum(x).Item(), sum - 20 * Tol.U * abs, sum + 20 * Tol.U * abs);
        Assert.InRange(Ops.Mean(x).Item(), (sum - 22 * Tol.U * abs) / 21, (sum + 22 * Tol.U * abs) / 21);
    }

    [Fact]
    public void MeanTokensAveragesOverTokens()
    {
        var x = Rand(2, 5, 3); var v = D(x);
        var expected = new double[6]; var mag = new double[6];
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 5; t++)
                for (int d = 0; d < 3; d++) { expected[b * 3 + d] += v[(b * 5 + t) * 3 + d] / 5; mag[b * 3 + d] += Math.Abs(v[(b * 5 + t) * 3 + d]) / 5; }
        Tol.Check("MeanTokens", expected, Ops.MeanTokens(x).ToArray(), i => 6 * Tol.U * mag[i]);
    }
}
