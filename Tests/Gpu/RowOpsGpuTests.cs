using ViTScratch.Kernels;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The launch shapes of the register-resident softmax and layernorm kernels (RowMath) that the
/// backend matrix does not reach, on the ILGPU CPU simulator against float64 computed here:
/// every team size (4, 8, 16, 32 lanes per row) with its 12 slots full and part full, rows past
/// the end of the last group, the layernorm backward's persistent groups striding over more rows
/// than they hold at once (the simulator has 1 SM, so 2 groups), and rows just over the register
/// path's 384 columns (the looping kernels).
///
/// Tolerance, as in GpuBackendTests: 4 u terms (|expected| + scale) + 1e-6, u = 2^-24: the bound
/// for a float32 sum of `terms` products, times 4 for the device exp/log (a few ulp).
/// </summary>
public sealed class RowOpsGpuTests(SimulatorFixture fx) : SimulatorTestBase(fx)
{

    [Theory]
    [InlineData(3, 48)]     // team 4, all 12 slots
    [InlineData(70, 17)]    // team 4, 64 rows per group: the second group is mostly past the end
    [InlineData(5, 96)]     // team 8, all 12 slots
    [InlineData(3, 257)]    // team 32, 9 slots (the ViT's 257-token attention rows)
    [InlineData(2, 384)]    // team 32, all 12 slots: the widest register row
    [InlineData(2, 385)]    // one column over: the looping kernels
    public void Softmax_and_log_softmax_every_team_size(int rows, int cols)
    {
        var r = new Random(rows * 1000 + cols);
        int n = rows * cols;
        var x = Rand(r, n, -5f, 5f); var dy = Rand(r, n); var init = Rand(r, n);
        var sm = new double[n]; var lsm = new double[n];
        for (int i = 0; i < rows; i++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int c = 0; c < cols; c++) max = Math.Max(max, x[i * cols + c]);
            for (int c = 0; c < cols; c++) sum += Math.Exp(x[i * cols + c] - max);
            for (int c = 0; c < cols; c++)
            {
                sm[i * cols + c] = Math.Exp(x[i * cols + c] - max) / sum;
                lsm[i * cols + c] = x[i * cols + c] - max - Math.Log(sum);
            }
        }
        var xb = Up(x); var dyb = Up(dy);
        var y = Poisoned(n);
        K.SoftmaxForward(xb, y, rows, cols);
        var yv = Down(y);
        Close(sm, yv, cols, 0, "softmax");
        y = Poisoned(n);
        K.LogSoftmaxForward(xb, y, rows, cols);
        var lyv = Down(y);
        Close(lsm, lyv, cols, 10, "logsoftmax");

        var dx = Up(init);
        K.SoftmaxBackward(Up(yv), dyb, dx, rows, cols);
        Close(Expect(n, t => { int i = t / cols; double dot = Sum(cols, c => (double)dy[i * cols + c] * yv[i * cols + c]); return init[t] + yv[t] * (dy[t] - dot); }),
            Down(dx), cols, 1, "softmax'");
        dx = Up(init);
        K.LogSoftmaxBackward(Up(lyv), dyb, dx, rows, cols);
        Close(Expect(n, t => { int i = t / cols; double s = Sum(cols, c => dy[i * cols + c]); return init[t] + dy[t] - Math.Exp(lyv[t]) * s; }),
            Down(dx), cols, 1, "logsoftmax'");
    }

    [Theory]
    [InlineData(150, 10)]   // team 4: 64 rows per group, 3 groups' worth of rows on 2 persistent groups
    [InlineData(9, 96)]     // team 8, all 12 slots
    [InlineData(37, 200)]   // team 32, 7 slots; 8 rows per group, 5 groups' worth on 2
    [InlineData(3, 384)]    // team 32, all 12 slots
    [InlineData(4, 400)]    // over 384: ForwardLong, BackwardDx and ParamPartials
    public void LayerNorm_every_team_size(int rows, int cols)
    {
        var r = new Random(rows * 1000 + cols);
        int n = rows * cols;
        var x = Rand(r, n, -2f, 3f); var gamma = Rand(r, cols, 0.5f, 1.5f); var beta = Rand(r, cols); var dy = Rand(r, n);
        var dxInit = Rand(r, n); var dgInit = Rand(r, cols); var dbInit = Rand(r, cols);
        var xb = Up(x); var gb = Up(gamma);
        var y = Poisoned(n); var mean = Poisoned(rows); var rstd = Poisoned(rows);
        K.LayerNormForward(xb, gb, Up(beta), y, mean, rstd, rows, cols, 1e-5f);

        var mu = new double[rows]; var rs = new double[rows]; var xhat = new double[n];
        for (int i = 0; i < rows; i++)
        {
            mu[i] = Sum(cols, c => x[i * cols + c]) / cols;
            double variance = Sum(cols, c => Math.Pow(x[i * cols + c] - mu[i], 2)) / cols;
            rs[i] = 1 / Math.Sqrt(variance + 1e-5);
            for (int c = 0; c < cols; c++) xhat[i * cols + c] = (x[i * cols + c] - mu[i]) * rs[i];
        }
        Close(Expect(n, t => xhat[t] * gamma[t % cols] + beta[t % cols]), Down(y), cols, 1, "ln");
        Close(mu, Down(mean), cols, 1, "mean");
        Close(rs, Down(rstd), cols, rs.Max(), "rstd");

        var dx = Up(dxInit); var dg = Up(dgInit); var db = Up(dbInit);
        K.LayerNormBackward(xb, gb, mean, rstd, Up(dy), dx, dg, db, rows, cols);
        var expDx = new double[n];
        for (int i = 0; i < rows; i++)
        {
            double mg = Sum(cols, c => (double)dy[i * cols + c] * gamma[c]) / cols;
            double mgx = Sum(cols, c => (double)dy[i * cols + c] * gamma[c] * xhat[i * cols + c]) / cols;
            for (int c = 0; c < cols; c++) { int t = i * cols + c; expDx[t] = dxInit[t] + rs[i] * (dy[t] * gamma[c] - mg - xhat[t] * mgx); }
        }
        Close(expDx, Down(dx), cols, rs.Max() * 4, "ln dx");
        Close(Expect(cols, c => dgInit[c] + Sum(rows, i => dy[i * cols + c] * xhat[i * cols + c])), Down(dg), rows + 1, 4, "dgamma");
        Close(Expect(cols, c => dbInit[c] + Sum(rows, i => dy[i * cols + c])), Down(db), rows + 1, 4, "dbeta");
    }
}
