using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The ILGPU kernels, run on ILGPU's CPU accelerator with 32-wide simulated warps, against
/// straightforward float64 computations written here. Focus: GPU-specific risks. Shapes are
/// ragged so rows straddle the 8-rows-per-group and 32-lanes-per-warp boundaries, matmul tiles
/// (64) and k-slabs (16) end mid-way, attention key tiles (32) and head dims (32) are partial.
/// `=` outputs are poisoned with NaN first, so an element no thread wrote fails; `+=` outputs
/// start from random values, so an overwrite instead of an accumulate fails.
///
/// Tolerance: Tol(expected, terms) = 4 u terms (|expected| + scale) with u = 2^-24 the float32
/// unit roundoff: the classic bound for summing `terms` float32 products, times a 4x margin for
/// the device exp/log (a few ulp) and the erf polynomial (1.5e-7 absolute).
/// </summary>
public sealed class GpuBackendTests(SimulatorFixture fx) : SimulatorTestBase(fx)
{
    // ---- data movement and broadcast -------------------------------------------------------------

    [Fact]
    public void CopyStrided_head_merge_and_broadcast_source()
    {
        var r = new Random(1);
        // x: [2, 3, 5, 7] -> y: [2, 5, 3, 7] (swap axes 1 and 2), then += a stride-0 broadcast.
        var x = Rand(r, 2 * 3 * 5 * 7);
        var layout = new StridedCopy(2, 3, 5, 7, 0, 105, 35, 7, 0, 105, 7, 21);
        var xb = Up(x); var yb = Poisoned(x.Length);
        K.CopyStrided(xb, yb, layout, accumulate: false);
        var expected = new double[x.Length];
        for (int a = 0; a < 2; a++) for (int b = 0; b < 3; b++) for (int c = 0; c < 5; c++) for (int j = 0; j < 7; j++)
            expected[a * 105 + c * 21 + b * 7 + j] = x[a * 105 + b * 35 + c * 7 + j];
        Close(expected, Down(yb), 1, 0, "copy");

        var row = Rand(r, 7);
        var rb = Up(row);
        K.CopyStrided(rb, yb, new StridedCopy(1, 1, 30, 7, 0, 0, 0, 0, 0, 0, 0, 7), accumulate: true);
        for (int i = 0; i < expected.Length; i++) expected[i] += row[i % 7];
        Close(expected, Down(yb), 2, 1, "copy+=");
    }

    [Theory]
    [InlineData(3, 5, 7)]
    [InlineData(1, 65, 1)]
    [InlineData(2, 1, 129)]
    public void Broadcast_ops_and_mid_reductions(int outer, int mid, int inner)
    {
        var r = new Random(outer * 1000 + mid * 10 + inner);
        int n = outer * mid * inner;
        var x = Rand(r, n); var w = Rand(r, n); var b = Rand(r, outer * inner); var init = Rand(r, outer * inner); var yInit = Rand(r, n);
        var xb = Up(x); var wb = Up(w); var bb = Up(b);

        var y = Poisoned(n);
        K.AddBroadcast(xb, bb, y, outer, mid, inner, 0.5f);
        Close(Expect(n, t => x[t] + 0.5 * b[B(t)]), Down(y), 2, 1, "add");

        y = Poisoned(n);
        K.MulBroadcast(xb, bb, y, outer, mid, inner, accumulate: false);
        Close(Expect(n, t => (double)x[t] * b[B(t)]), Down(y), 1, 0, "mul");
        y = Up(yInit);
        K.MulBroadcast(xb, bb, y, outer, mid, inner, accumulate: true);
        Close(Expect(n, t => yInit[t] + (double)x[t] * b[B(t)]), Down(y), 2, 1, "mul+=");

        var s = Poisoned(outer * inner);
        K.SumMid(xb, s, outer, mid, inner, -2f, accumulate: false);
        Close(Expect(outer * inner, o => -2 * Sum(mid, m => x[(o / inner * mid + m) * inner + o % inner])), Down(s), mid, 1, "summid");
        s = Up(init);
        K.MulSumMid(xb, wb, s, outer, mid, inner, accumulate: true);
        Close(Expect(outer * inner, o => init[o] + Sum(mid, m => { int t = (o / inner * mid + m) * inner + o % inner; return (double)x[t] * w[t]; })),
            Down(s), mid + 1, 1, "mulsummid+=");

        y = Up(yInit);
        K.Scale(xb, y, n, 3f, accumulate: true);
        Close(Expect(n, t => yInit[t] + 3.0 * x[t]), Down(y), 2, 1, "scale+=");

        int B(int t) => t / (mid * inner) * inner + t % inner;
    }

    [Fact]
    public void Gelu_and_dropout_forward_and_backward()
    {
        var r = new Random(2);
        int n = 1000;
        var x = Rand(r, n, -4f, 4f); var dy = Rand(r, n); var init = Rand(r, n);
        var xb = Up(x); var dyb = Up(dy);
        var y = Poisoned(n);
        K.GeluForward(xb, y, n);
        Close(Expect(n, i => x[i] * 0.5 * (1 + ErfD(x[i] / Math.Sqrt(2)))), Down(y), 8, 1, "gelu");
        var dx = Up(init);
        K.GeluBackward(xb, dyb, dx, n);
        Close(Expect(n, i => init[i] + dy[i] * (0.5 * (1 + ErfD(x[i] / Math.Sqrt(2))) + x[i] * Math.Exp(-0.5 * x[i] * x[i]) / Math.Sqrt(2 * Math.PI))),
            Down(dx), 8, 1, "gelu'");

        const float p = 0.3f; const uint seed = 77;
        y = Poisoned(n);
        K.DropoutForward(xb, y, n, p, seed);
        Close(Expect(n, i => KernelMath.DropoutKeep(seed, (uint)i, p) ? x[i] / (1 - (double)p) : 0), Down(y), 2, 1, "dropout");
        dx = Up(init);
        K.DropoutBackward(dyb, dx, n, p, seed);
        Close(Expect(n, i => init[i] + (KernelMath.DropoutKeep(seed, (uint)i, p) ? dy[i] / (1 - (double)p) : 0)), Down(dx), 2, 1, "dropout'");
    }

    // ---- row-wise ------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1)]
    [InlineData(9, 7)]
    [InlineData(17, 65)]
    public void Softmax_and_log_softmax(int rows, int cols)
    {
        var r = new Random(rows * 100 + cols);
        int n = rows * cols;
        var x = Rand(r, n, -5f, 5f); var dy = Rand(r, n); var init = Rand(r, n);
        var xb = Up(x); var dyb = Up(dy);
        var sm = new double[n]; var lsm = new double[n];
        for (int i = 0; i < rows; i++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int c = 0; c < cols; c++) max = Math.Max(max, x[i * cols + c]);
            for (int c = 0; c < cols; c++) sum += Math.Exp(x[i * cols + c] - max);
            for (int c = 0; c < cols; c++) { sm[i * cols + c] = Math.Exp(x[i * cols + c] - max) / sum; lsm[i * cols + c] = x[i * cols + c] - max - Math.Log(sum); }
        }
        var y = Poisoned(n);
        K.SoftmaxForward(xb, y, rows, cols);
        var yv = Down(y);
        Close(sm, yv, cols, 0, "softmax");
        y = Poisoned(n);
        K.LogSoftmaxForward(xb, y, rows, cols);
        var lyv = Down(y);
        Close(lsm, lyv, cols, 10, "logsoftmax");

        // Backward from the kernel's own forward output (as the engine does).
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
    [InlineData(9, 10, 0.1f)]
    [InlineData(3, 37, 0f)]
    public void Cross_entropy_and_count_correct(int rows, int classes, float smoothing)
    {
        var r = new Random(rows + classes);
        var x = Rand(r, rows * classes, -3f, 3f);
        var labels = new float[rows];
        for (int i = 0; i < rows; i++) labels[i] = r.Next(classes);
        // A tie on row 0 between the label and an earlier class: the first maximum must win.
        int l0 = (int)labels[0] == 0 ? 1 : (int)labels[0];
        labels[0] = l0; x[l0] = 9f; x[0] = 9f;
        // Row 1 predicted right for sure.
        x[classes + (int)labels[1]] = 10f;
        var dl = Rand(r, rows); var init = Rand(r, rows * classes);
        var xb = Up(x); var lb = Up(labels);

        var loss = Poisoned(rows);
        K.CrossEntropyForward(xb, lb, loss, rows, classes, smoothing);
        var probs = new double[rows * classes];
        var expLoss = new double[rows];
        int correct = 0;
        for (int i = 0; i < rows; i++)
        {
            double max = double.NegativeInfinity, sum = 0;
            int best = 0;
            for (int c = 0; c < classes; c++) { max = Math.Max(max, x[i * classes + c]); if (x[i * classes + c] > x[i * classes + best]) best = c; }
            if (best == (int)labels[i]) correct++;
            for (int c = 0; c < classes; c++) sum += Math.Exp(x[i * classes + c] - max);
            for (int c = 0; c < classes; c++)
            {
                double logp = x[i * classes + c] - max - Math.Log(sum);
                double target = smoothing / classes + (c == (int)labels[i] ? 1 - smoothing : 0);
                expLoss[i] -= target * logp;
                probs[i * classes + c] = Math.Exp(logp);
            }
        }
        Close(expLoss, Down(loss), classes, 10, "ce");

        var dx = Up(init);
        K.CrossEntropyBackward(xb, lb, Up(dl), dx, rows, classes, smoothing);
        Close(Expect(rows * classes, t => { int i = t / classes, c = t % classes; double target = smoothing / classes + (c == (int)labels[i] ? 1 - smoothing : 0); return init[t] + dl[i] * (probs[t] - target); }),
            Down(dx), classes, 1, "ce'");

        var cnt = Up([5f]);
        K.CountCorrect(xb, lb, cnt, rows, classes);
        Assert.True(correct >= 1);
        Assert.Equal(5f + correct, Down(cnt)[0]);
    }

    [Theory]
    [InlineData(1, 7)]
    [InlineData(65, 40)]
    public void LayerNorm_forward_and_backward(int rows, int cols)
    {
        var r = new Random(rows * cols);
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
            double var_ = Sum(cols, c => Math.Pow(x[i * cols + c] - mu[i], 2)) / cols;
            rs[i] = 1 / Math.Sqrt(var_ + 1e-5);
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

    // ---- optimizers ----------------------------------------------------------------------------

    [Fact]
    public void SumSquares_then_clipped_AdamW_and_SGD()
    {
        var r = new Random(3);
        int n = 5001;   // more than the 16 x 256 threads of an elementwise launch on the simulator: the grid-stride loop wraps
        var g = Rand(r, n); var p0 = Rand(r, n); var m0 = Rand(r, n, -0.1f, 0.1f); var v0 = Rand(r, n, 0f, 0.01f);
        var gb = Up(g);
        var norm = Up([1.5f]);
        K.SumSquares(gb, n, norm, accumulate: true);
        double sq = 1.5 + Sum(n, i => (double)g[i] * g[i]);
        Close([sq], Down(norm), 64, 1, "sumsq");   // tree reduction: error grows with depth, not n
        var normSet = Poisoned(1);
        K.SumSquares(gb, 7, normSet, accumulate: false);
        Close([Sum(7, i => (double)g[i] * g[i])], Down(normSet), 7, 0, "sumsq=");

        float maxNorm = 1f;
        double clip = Math.Min(1, maxNorm / (Math.Sqrt(Down(norm)[0]) + 1e-6));
        Assert.True(clip < 0.1);   // the clip really bites
        var args = new AdamWArgs(1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, 3);
        var pb = Up(p0); var mb = Up(m0); var vb = Up(v0);
        K.AdamWStep(pb, gb, mb, vb, n, args, norm, maxNorm);
        double bc1 = 1 - Math.Pow(0.9, 3), bc2 = 1 - Math.Pow(0.999, 3);
        var em = Expect(n, i => 0.9 * m0[i] + 0.1 * g[i] * clip);
        var ev = Expect(n, i => 0.999 * v0[i] + 0.001 * Math.Pow(g[i] * clip, 2));
        Close(em, Down(mb), 4, 1, "adam m");
        Close(ev, Down(vb), 4, 1e-3, "adam v");
        // p: lr/bc1 * m/(sqrt(v/bc2)+eps) amplifies relative error of v by 1/2 and of the step by ~lr/bc1.
        Close(Expect(n, i => p0[i] * (1 - 1e-2 * 0.05) - 1e-2 / bc1 * em[i] / (Math.Sqrt(ev[i] / bc2) + 1e-8)), Down(pb), 16, 1, "adam p");

        var sgd = new SgdArgs(0.1f, 0.9f, Nesterov: true, WeightDecay: 1e-3f, FirstStep: false);
        pb = Up(p0); mb = Up(m0);
        K.SgdStep(pb, gb, mb, n, sgd, null, 0f);
        var eb = Expect(n, i => 0.9 * m0[i] + g[i] + 1e-3 * p0[i]);
        Close(eb, Down(mb), 4, 1, "sgd buf");
        Close(Expect(n, i => p0[i] - 0.1 * (g[i] + 1e-3 * p0[i] + 0.9 * eb[i])), Down(pb), 8, 1, "sgd p");
    }

    // ---- matmul --------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1, 1, false, false)]
    [InlineData(65, 70, 129, false, false)]
    [InlineData(7, 65, 17, true, false)]
    [InlineData(66, 7, 33, false, true)]
    [InlineData(19, 129, 5, true, true)]
    public void MatMul_matches_float64_on_ragged_tiles(int m, int n, int k, bool ta, bool tb)
    {
        var r = new Random(m * 7 + n * 11 + k);
        var a = Rand(r, m * k); var b = Rand(r, k * n);
        var c = Poisoned(m * n);
        K.MatMul(Up(a), Up(b), c, MatMulShape.Single(m, n, k, ta, tb), 0.5f, accumulate: false);
        Close(Ref(a, b, m, n, k, ta, tb, 0, 0, 0.5), Down(c), k, 0.5 * k, "C");
    }

    [Fact]
    public void MatMul_batched_shared_operand_accumulates()
    {
        var r = new Random(4);
        int batch = 3, m = 9, n = 67, k = 20;
        var a = Rand(r, batch * m * k); var b = Rand(r, k * n); var init = Rand(r, batch * m * n);
        var c = Up(init);
        // B shared across the batch (stride 0), A transposed per batch.
        var shape = new MatMulShape(batch, m, n, k, true, false, (long)m * k, 0, (long)m * n);
        K.MatMul(Up(a), Up(b), c, shape, 1f, accumulate: true);
        var expected = new double[batch * m * n];
        for (int bt = 0; bt < batch; bt++)
        {
            var e = Ref(a, b, m, n, k, true, false, bt * m * k, 0, 1);
            for (int i = 0; i < m * n; i++) expected[bt * m * n + i] = init[bt * m * n + i] + e[i];
        }
        Close(expected, Down(c), k + 1, k, "C+=");
    }

    private static double[] Ref(float[] a, float[] b, int m, int n, int k, bool ta, bool tb, int ao, int bo, double alpha)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double)a[ao + (ta ? p * m + i : i * k + p)] * b[bo + (tb ? j * k + p : p * n + j)];
                c[i * n + j] = alpha * s;
            }
        return c;
    }

    // ---- attention -----------------------------------------------------------------------------

    [Theory]
    [InlineData(2, 7, 5, 0f)]
    [InlineData(1, 37, 40, 0f)]
    [InlineData(1, 33, 16, 0.25f)]
    public void Attention_matches_float64_forward_and_backward(int bh, int n, int d, float p)
    {
        var r = new Random(bh * 1000 + n * 10 + d);
        int len = bh * n * d;
        var q = Rand(r, len); var k = Rand(r, len); var v = Rand(r, len); var dO = Rand(r, len);
        var dqI = Rand(r, len); var dkI = Rand(r, len); var dvI = Rand(r, len);
        float scale = 1f / MathF.Sqrt(d);
        const uint seed = 1234;
        var qb = Up(q); var kb = Up(k); var vb = Up(v);
        var o = Poisoned(len); var lse = Poisoned(bh * n);
        K.AttentionForward(qb, kb, vb, o, lse, bh, n, d, scale, p, seed);
        var ov = Down(o);

        var eo = new double[len]; var expLse = new double[bh * n];
        var edq = new double[len]; var edk = new double[len]; var edv = new double[len];
        for (int t = 0; t < len; t++) { edq[t] = dqI[t]; edk[t] = dkI[t]; edv[t] = dvI[t]; }
        double keepScale = 1 / (1 - (double)p);
        for (int h = 0; h < bh; h++)
        {
            int hb = h * n * d;
            var P = new double[n, n]; var keep = new double[n, n];
            for (int i = 0; i < n; i++)
            {
                var s = new double[n];
                for (int j = 0; j < n; j++) s[j] = scale * Sum(d, c => (double)q[hb + i * d + c] * k[hb + j * d + c]);
                double max = s.Max(), sum = s.Sum(z => Math.Exp(z - max));
                expLse[h * n + i] = max + Math.Log(sum);
                for (int j = 0; j < n; j++)
                {
                    P[i, j] = Math.Exp(s[j] - expLse[h * n + i]);
                    keep[i, j] = p > 0 ? (KernelMath.DropoutKeep(seed, (uint)((h * n + i) * n + j), p) ? keepScale : 0) : 1;
                    for (int c = 0; c < d; c++) eo[hb + i * d + c] += P[i, j] * keep[i, j] * v[hb + j * d + c];
                }
            }
            for (int i = 0; i < n; i++)
            {
                // D_i from the kernel's own o, as the backward pass sees it.
                double D = Sum(d, c => (double)dO[hb + i * d + c] * ov[hb + i * d + c]);
                for (int j = 0; j < n; j++)
                {
                    double dp = keep[i, j] * Sum(d, c => (double)dO[hb + i * d + c] * v[hb + j * d + c]);
                    double ds = P[i, j] * (dp - D) * scale;
                    for (int c = 0; c < d; c++)
                    {
                        edq[hb + i * d + c] += ds * k[hb + j * d + c];
                        edk[hb + j * d + c] += ds * q[hb + i * d + c];
                        edv[hb + j * d + c] += P[i, j] * keep[i, j] * dO[hb + i * d + c];
                    }
                }
            }
        }
        Close(eo, ov, n + d, 1 + keepScale, "o");
        Close(expLse, Down(lse), n + d, 1, "lse");

        var dq = Up(dqI); var dk = Up(dkI); var dv = Up(dvI);
        K.AttentionBackward(qb, kb, vb, o, lse, Up(dO), dq, dk, dv, bh, n, d, scale, p, seed);
        Close(edq, Down(dq), 2 * (n + d), 2 * keepScale, "dq");
        Close(edk, Down(dk), 2 * (n + d), 2 * keepScale, "dk");
        Close(edv, Down(dv), 2 * (n + d), 2 * keepScale, "dv");
    }

    /// <summary>
    /// The fused kernels against the unfused path through the same backend: S = scale Q Kᵀ by
    /// MatMul, P = softmax(S), O = P V; backward by MatMul and SoftmaxBackward.
    /// </summary>
    [Fact]
    public void Fused_attention_matches_unfused_matmul_softmax_matmul()
    {
        var r = new Random(5);
        int bh = 1, n = 37, d = 36, len = bh * n * d;
        float scale = 1f / MathF.Sqrt(d);
        var q = Up(Rand(r, len)); var k = Up(Rand(r, len)); var v = Up(Rand(r, len)); var dO = Up(Rand(r, len));
        var nn = MatMulShape.Batched(bh, n, n, d, transB: true);          // S = Q Kᵀ: [bh, n, n]
        var S = K.Allocate(bh * n * n); var P = K.Allocate(bh * n * n);
        var oU = K.Allocate(len);
        K.MatMul(q, k, S, nn, scale, accumulate: false);
        K.SoftmaxForward(S, P, bh * n, n);
        K.MatMul(P, v, oU, MatMulShape.Batched(bh, n, d, n), 1f, accumulate: false);

        var oF = Poisoned(len); var lse = Poisoned(bh * n);
        K.AttentionForward(q, k, v, oF, lse, bh, n, d, scale, 0f, 0);
        Close(Array.ConvertAll(Down(oU), z => (double)z), Down(oF), 2 * (n + d), 2, "fused o");

        // Unfused backward: dP = dO Vᵀ, dS = softmax'(dP), dQ = scale dS K, dK = scale dSᵀ Q, dV = Pᵀ dO.
        var dP = K.Allocate(bh * n * n); var dS = K.Allocate(bh * n * n);
        var dqU = K.Allocate(len); var dkU = K.Allocate(len); var dvU = K.Allocate(len);
        K.MatMul(dO, v, dP, MatMulShape.Batched(bh, n, n, d, transB: true), 1f, accumulate: false);
        K.SoftmaxBackward(P, dP, dS, bh * n, n);
        K.MatMul(dS, k, dqU, MatMulShape.Batched(bh, n, d, n), scale, accumulate: true);
        K.MatMul(dS, q, dkU, MatMulShape.Batched(bh, n, d, n, transA: true), scale, accumulate: true);
        K.MatMul(P, dO, dvU, MatMulShape.Batched(bh, n, d, n, transA: true), 1f, accumulate: true);

        var dqF = K.Allocate(len); var dkF = K.Allocate(len); var dvF = K.Allocate(len);
        K.AttentionBackward(q, k, v, oF, lse, dO, dqF, dkF, dvF, bh, n, d, scale, 0f, 0);
        Close(Array.ConvertAll(Down(dqU), z => (double)z), Down(dqF), 4 * (n + d), 4, "fused dq");
        Close(Array.ConvertAll(Down(dkU), z => (double)z), Down(dkF), 4 * (n + d), 4, "fused dk");
        Close(Array.ConvertAll(Down(dvU), z => (double)z), Down(dvF), 4 * (n + d), 4, "fused dv");
    }

    [Fact]
    public void Factory_names_and_errors()
    {
        Assert.True(BackendFactory.IsAvailable("ilgpu-cpu"));
        Assert.Equal("ilgpu-cpu", K.Name);
        if (!BackendFactory.IsAvailable("cuda"))
        {
            var e = Assert.Throws<ViTScratchException>(() => BackendFactory.Create("cuda"));
            Assert.Contains("no CUDA device", e.Message);
        }
        Assert.Throws<ArgumentException>(() => K.MatMul(new global::ViTScratch.Kernels.Cpu.CpuBuffer(new float[1], 0, 1), K.Allocate(1), K.Allocate(1), MatMulShape.Single(1, 1, 1), 1f, false));
    }

    // ---- reference helpers -----------------------------------------------------------------------

    // erf in float64 (Abramowitz-Stegun 7.1.28 is not exact enough; use the series / continued
    // fraction via the complementary function): accurate to ~1e-15, far below the float32 tolerance.
    private static double ErfD(double x)
    {
        double ax = Math.Abs(x), r;
        if (ax < 2.5)
        {
            double term = ax, sum = ax;
            for (int k = 1; k < 60; k++) { term *= -ax * ax / k; sum += term / (2 * k + 1); }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // Continued fraction for erfc, evaluated bottom-up.
            double f = 0;
            for (int k = 60; k >= 1; k--) f = k / 2.0 / (ax + f);
            r = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }
}
