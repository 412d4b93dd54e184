using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

/// <summary>
/// A layernorm case. Offset shifts every x by a constant much larger than its spread, as in a
/// residual stream: the bounds below then hold only for a cancellation-free variance (two-pass or
/// Welford); E[x²] - E[x]² in float32 loses about Offset² / Var · cols · U and fails, on purpose.
/// </summary>
public sealed record LayerNormCase(int Rows, int Cols, double Offset)
{
    public static IEnumerable<LayerNormCase> For(bool slow)
    {
        // On the simulator: the GPU row kernels' teams (RowOpsMatrixTests): 128 and 192 columns (the
        // model's dims) the 16-lane team; (150, 10) team 4, 64 rows per group, 3 groups' worth of rows
        // on the simulator's 2 persistent backward groups; (9, 96) team 8 full; (37, 200) team 32
        // with 7 slots, 5 groups' worth on 2; (3, 384) team 32 full; (4, 400) over 384: ForwardLong,
        // BackwardDx and ParamPartials.
        var shapes = slow
            ? new[] { (1, 1), (3, 7), (5, 33), (2, 17), (65, 40), (2, 128), (3, 192), (150, 10), (9, 96), (37, 200), (3, 384), (4, 400) }
            : new[] { (1, 1), (1, 7), (3, 8), (5, 17), (7, 64), (65, 65), (33, 129), (129, 192), (500, 65) };
        foreach (var (r, c) in shapes) yield return new(r, c, 0.5);
        yield return new(slow ? 3 : 65, slow ? 17 : 129, 8);
    }
}

[Collection(BackendCollection.Name)]
public class LayerNormMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, LayerNormCase> Rows => BackendMatrix.Rows(LayerNormCase.For);

    private const float Eps = 1e-5f;

    private static float[] Inputs(TestRandom rng, LayerNormCase c) =>
        rng.Floats(c.Rows * c.Cols, c.Offset - 1.5, c.Offset + 1.5);

    // mean: a sum of cols terms, |error| ≤ (cols + 2) U mean|x|.
    // rstd: the variance is a sum of cols squares, relative error ≤ (cols + 4) U (plus a second-order
    //   term from the mean's error); sqrt and reciprocal add 2U: relative ≤ (cols + 8) U.
    // y = (x - mean) rstd gamma + beta: x - mean is off by the mean's error plus U |x - mean|, times
    //   rstd with its own error; times gamma and plus beta add 2U. Bound:
    //   |gamma| (rstd (cols + 2) U mean|x| + |xhat| (cols + 12) U) + 2U (|gamma xhat| + |beta|).
    [Theory, MemberData(nameof(Rows))]
    public void LayerNormForward(string backend, LayerNormCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"layernorm {c}");
        int n = c.Rows * c.Cols;
        using var run = new OpRun(k);
        var x = run.With("x", Inputs(rng, c));
        var gamma = run.With("gamma", rng.Floats(c.Cols, 0.5, 1.5));
        var beta = run.With("beta", rng.Floats(c.Cols));
        var y = run.Poisoned("y", n);
        var mean = run.Poisoned("mean", c.Rows);
        var rstd = run.Poisoned("rstd", c.Rows);
        k.LayerNormForward(x, gamma, beta, y, mean, rstd, c.Rows, c.Cols, Eps);
        R.LayerNormForward(x.Ref, gamma.Ref, beta.Ref, y.Ref, mean.Ref, rstd.Ref, c.Rows, c.Cols, Eps);
        var meanAbs = new double[c.Rows];
        for (int i = 0; i < n; i++) meanAbs[i / c.Cols] += Math.Abs(x.Ref[i]) / c.Cols;
        run.Check(mean, r => (c.Cols + 2) * U * meanAbs[r]);
        run.Check(rstd, r => (c.Cols + 8) * U * rstd.Ref[r]);
        run.Check(y, i =>
        {
            int r = i / c.Cols, col = i % c.Cols;
            double xhat = (x.Ref[i] - mean.Ref[r]) * rstd.Ref[r], g = Math.Abs(gamma.Ref[col]);
            return g * (rstd.Ref[r] * (c.Cols + 2) * U * meanAbs[r] + Math.Abs(xhat) * (c.Cols + 12) * U)
                   + 2 * U * (g * Math.Abs(xhat) + Math.Abs(beta.Ref[col]));
        });
        run.CheckRest();
    }

    // With g = dy gamma and xhat (3U relative from its two roundings and the saved stats):
    //   mean(g) within (cols + 2) U mean|g|, mean(g xhat) within (cols + 4) U mean|g xhat|, so
    //   dx: (cols + 8) U rstd (|g| + mean|g| + 2 |xhat| mean|g xhat|) + 2U (|dx0| + |added|);
    //   dgamma: a sum over rows, (rows + 8) U Σ|dy xhat| + 2U |dgamma0|;
    //   dbeta: (rows + 4) U Σ|dy| + 2U |dbeta0|.
    [Theory, MemberData(nameof(Rows))]
    public void LayerNormBackward(string backend, LayerNormCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"layernorm' {c}");
        int n = c.Rows * c.Cols;
        var xs = Inputs(rng, c);
        var gs = rng.Floats(c.Cols, 0.5, 1.5);
        var meanD = new double[c.Rows]; var rstdD = new double[c.Rows];
        R.LayerNormForward(xs.ToDouble(), gs.ToDouble(), new double[c.Cols], new double[n], meanD, rstdD, c.Rows, c.Cols, Eps);
        using var run = new OpRun(k);
        var x = run.With("x", xs);
        var gamma = run.With("gamma", gs);
        var mean = run.With("mean", meanD.ToFloat());
        var rstd = run.With("rstd", rstdD.ToFloat());
        var dy = run.With("dy", rng.Floats(n));
        var dx = run.With("dx", rng.Floats(n));
        var dgamma = run.With("dgamma", rng.Floats(c.Cols));
        var dbeta = run.With("dbeta", rng.Floats(c.Cols));

        var meanAbsG = new double[c.Rows]; var meanAbsGx = new double[c.Rows];
        var sumAbsDyX = new double[c.Cols]; var sumAbsDy = new double[c.Cols];
        double Xhat(int i) => (x.Ref[i] - mean.Ref[i / c.Cols]) * rstd.Ref[i / c.Cols];
        for (int i = 0; i < n; i++)
        {
            int r = i / c.Cols, col = i % c.Cols;
            double g = Math.Abs(dy.Ref[i] * gamma.Ref[col]);
            meanAbsG[r] += g / c.Cols;
            meanAbsGx[r] += g * Math.Abs(Xhat(i)) / c.Cols;
            sumAbsDyX[col] += Math.Abs(dy.Ref[i] * Xhat(i));
            sumAbsDy[col] += Math.Abs(dy.Ref[i]);
        }

        k.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, c.Rows, c.Cols);
        R.LayerNormBackward(x.Ref, gamma.Ref, mean.Ref, rstd.Ref, dy.Ref, dx.Ref, dgamma.Ref, dbeta.Ref, c.Rows, c.Cols);
        run.Check(dx, i =>
        {
            int r = i / c.Cols;
            double g = Math.Abs(dy.Ref[i] * gamma.Ref[i % c.Cols]);
            return (c.Cols + 8) * U * rstd.Ref[r] * (g + meanAbsG[r] + 2 * Math.Abs(Xhat(i)) * meanAbsGx[r])
                   + 2 * U * (Math.Abs(dx.Init[i]) + Math.Abs(dx.Ref[i] - dx.Init[i]));
        });
        run.Check(dgamma, j => (c.Rows + 8) * U * sumAbsDyX[j] + 2 * U * Math.Abs(dgamma.Init[j]));
        run.Check(dbeta, j => (c.Rows + 4) * U * sumAbsDy[j] + 2 * U * Math.Abs(dbeta.Init[j]));
        run.CheckRest();
    }
}
