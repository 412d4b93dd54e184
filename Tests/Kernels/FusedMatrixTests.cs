using ViTScratch.Tests.Reference;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

/// <summary>A GeluBiasBackward case: [rows, cols] and which outputs start as `+=`.</summary>
public sealed record GeluBiasCase(int Rows, int Cols, bool AccumulateDx, bool AccumulateBias)
{
    public override string ToString() => $"{Rows}x{Cols}{(AccumulateDx ? " dx+=" : "")}{(AccumulateBias ? " dbias+=" : "")}";

    public static IEnumerable<GeluBiasCase> For(bool slow)
    {
        // Ragged widths around the 8- and 16-wide vectors and the GPU's 32-column groups; (520, 384)
        // is vit-tiny's hidden width over enough rows for every CPU piece; on the simulator
        // (70, 40) and (96, 33) cut their rows into parts (the two-stage column sum); (3, 2500) is
        // past the 2048 columns whose sums the CPU kernel keeps on the stack.
        var shapes = slow
            ? new[] { (1, 1), (3, 7), (5, 33), (9, 96), (70, 40), (96, 33) }
            : new[] { (1, 1), (3, 7), (2, 16), (5, 17), (7, 64), (65, 33), (33, 129), (129, 65), (300, 192), (520, 384), (3, 2500) };
        var flags = slow ? new[] { (false, false), (true, true) } : new[] { (false, false), (false, true), (true, false), (true, true) };
        foreach (var (r, c) in shapes)
            foreach (var (dx, db) in flags)
                yield return new(r, c, dx, db);
    }
}

/// <summary>
/// The fused kernels (IKernels.GeluBiasBackward, AddLayerNormForward) against the float64
/// reference of the two ops each one fuses, on every backend of the matrix (see BackendMatrixTests).
/// </summary>
[Collection(BackendCollection.Name)]
public class FusedMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, GeluBiasCase> GeluBiasRows => BackendMatrix.Rows(GeluBiasCase.For);
    public static TheoryData<string, LayerNormCase> AddNormRows => BackendMatrix.Rows(LayerNormCase.For);

    private const double PhiError = ReferenceErfTests.KernelErfError / 2 + 4 * U;
    private const float Eps = 1e-5f;

    // Against float64: t = dy gelu'(x) carries |dy| dErr (ElementwiseMatrixTests.GeluBackward) plus U |t| for its
    // product; dx (=|+=) t adds 2U (|dx0| + |t|). dbias sums rows of those t: the sum of their
    // errors plus (rows + 2) U Σ|t| for the additions, plus 2U |dbias0|.
    [Theory, MemberData(nameof(GeluBiasRows))]
    public void GeluBiasBackward(string backend, GeluBiasCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"gelu-bias' {c}");
        int n = c.Rows * c.Cols;
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(n, -6, 6));
        var dy = run.With("dy", rng.Floats(n));
        var dx = c.AccumulateDx ? run.With("dx", rng.Floats(n)) : run.Poisoned("dx", n);
        var dbias = c.AccumulateBias ? run.With("dbias", rng.Floats(c.Cols)) : run.Poisoned("dbias", c.Cols);

        var tErr = new double[n];
        var colErr = new double[c.Cols];
        for (int i = 0; i < n; i++)
        {
            double xv = x.Ref[i], xphi = Math.Abs(xv * ReferenceErf.Pdf(xv));
            double t = Math.Abs(dy.Ref[i] * R.GeluDerivative(xv));
            tErr[i] = Math.Abs(dy.Ref[i]) * (PhiError + xphi * (8 + xv * xv) * U) + U * t;
            colErr[i % c.Cols] += tErr[i] + (c.Rows + 2) * U * t;
        }

        if (c.Cols > 2048)
        {
            // The CPU kernel then sums the columns in a rented array: make the one it will get
            // (this thread's most recently returned) dirty, so a sum that is not cleared shows.
            var dirty = System.Buffers.ArrayPool<float>.Shared.Rent(c.Cols);
            Array.Fill(dirty, float.NaN);
            System.Buffers.ArrayPool<float>.Shared.Return(dirty);
        }
        k.GeluBiasBackward(x, dy, dx, dbias, c.Rows, c.Cols, c.AccumulateDx, c.AccumulateBias);
        R.GeluBiasBackward(x.Ref, dy.Ref, dx.Ref, dbias.Ref, c.Rows, c.Cols, c.AccumulateDx, c.AccumulateBias);
        run.Check(dx, i =>
        {
            double dx0 = c.AccumulateDx ? Math.Abs(dx.Init[i]) : 0;
            return tErr[i] + 2 * U * (dx0 + Math.Abs(dy.Ref[i] * R.GeluDerivative(x.Ref[i])));
        });
        run.Check(dbias, j => colErr[j] + 2 * U * (c.AccumulateBias ? Math.Abs(dbias.Init[j]) : 0));
        run.CheckRest();

        // And the fusion must be exact: the backend's own GeluBackward (into a zeroed dx unless
        // accumulating) and, for a fresh dx, SumMid over it give the same values.
        using var plain = new OpRun(k);
        var x2 = plain.With("x", x.Init);
        var dy2 = plain.With("dy", dy.Init);
        var dx2 = plain.With("dx", c.AccumulateDx ? dx.Init : new float[n]);
        var db2 = plain.With("dbias", c.AccumulateBias ? dbias.Init : new float[c.Cols]);
        k.GeluBackward(x2, dy2, dx2, n);
        Assert.Equal(run.Read(dx), plain.Read(dx2));
        if (c.AccumulateDx) return;
        k.SumMid(dx2, db2, 1, c.Rows, c.Cols, 1f, c.AccumulateBias);
        Assert.Equal(run.Read(dbias), plain.Read(db2));
    }

    // sum = a + b rounds once: U |sum|. The norm is then LayerNormMatrixTests.LayerNormForward's
    // bound on the stored sum, plus what that rounding (δ, |δ_i| ≤ U |s_i|) moves: the mean by
    // U mean|s|, each s - mean by U (|s_i| + mean|s|), and rstd by a relative 2U rms(s) rstd (the
    // variance moves by at most 2 sqrt(var) rms(δ - mean δ)).
    // And the fusion must be exact: the backend's own LayerNormForward on the sum it stored gives
    // the same bits.
    [Theory, MemberData(nameof(AddNormRows))]
    public void AddLayerNormForward(string backend, LayerNormCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"add-layernorm {c}");
        int n = c.Rows * c.Cols;
        using var run = new OpRun(k);
        var a = run.With("a", rng.Floats(n, c.Offset - 1.5, c.Offset + 1.5));   // the residual stream
        var b = run.With("b", rng.Floats(n, -1, 1));                            // the block's output
        var gamma = run.With("gamma", rng.Floats(c.Cols, 0.5, 1.5));
        var beta = run.With("beta", rng.Floats(c.Cols));
        var sum = run.Poisoned("sum", n);
        var y = run.Poisoned("y", n);
        var mean = run.Poisoned("mean", c.Rows);
        var rstd = run.Poisoned("rstd", c.Rows);
        k.AddLayerNormForward(a, b, sum, gamma, beta, y, mean, rstd, c.Rows, c.Cols, Eps);
        R.AddLayerNormForward(a.Ref, b.Ref, sum.Ref, gamma.Ref, beta.Ref, y.Ref, mean.Ref, rstd.Ref, c.Rows, c.Cols, Eps);

        var meanAbs = new double[c.Rows];
        var rms = new double[c.Rows];
        for (int i = 0; i < n; i++)
        {
            meanAbs[i / c.Cols] += Math.Abs(sum.Ref[i]) / c.Cols;
            rms[i / c.Cols] += sum.Ref[i] * sum.Ref[i] / c.Cols;
        }
        for (int r = 0; r < c.Rows; r++) rms[r] = Math.Sqrt(rms[r]);
        run.Check(sum, i => U * Math.Abs(sum.Ref[i]));
        run.Check(mean, r => (c.Cols + 3) * U * meanAbs[r]);
        run.Check(rstd, r => (c.Cols + 8) * U * rstd.Ref[r] + 2 * U * rms[r] * rstd.Ref[r] * rstd.Ref[r]);
        run.Check(y, i =>
        {
            int r = i / c.Cols, col = i % c.Cols;
            double s = sum.Ref[i], xhat = (s - mean.Ref[r]) * rstd.Ref[r], g = Math.Abs(gamma.Ref[col]);
            return g * (rstd.Ref[r] * (c.Cols + 2) * U * meanAbs[r] + Math.Abs(xhat) * (c.Cols + 12) * U)
                   + 2 * U * (g * Math.Abs(xhat) + Math.Abs(beta.Ref[col]))
                   + g * (rstd.Ref[r] * U * (Math.Abs(s) + meanAbs[r]) + Math.Abs(xhat) * 2 * U * rms[r] * rstd.Ref[r]);
        });
        run.CheckRest();

        using var plain = new OpRun(k);
        var s2 = plain.With("sum", run.Read(sum));
        var g2 = plain.With("gamma", gamma.Init);
        var b2 = plain.With("beta", beta.Init);
        var y2 = plain.Poisoned("y", n);
        var mean2 = plain.Poisoned("mean", c.Rows);
        var rstd2 = plain.Poisoned("rstd", c.Rows);
        k.LayerNormForward(s2, g2, b2, y2, mean2, rstd2, c.Rows, c.Cols, Eps);
        Assert.Equal(run.Read(y), plain.Read(y2));
        Assert.Equal(run.Read(mean), plain.Read(mean2));
        Assert.Equal(run.Read(rstd), plain.Read(rstd2));
    }
}
