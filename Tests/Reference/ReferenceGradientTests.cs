using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;
using static ViTScratch.Tests.Reference.FiniteDifference;
using R = ViTScratch.Tests.Reference.ReferenceKernels;

namespace ViTScratch.Tests.Reference;

/// <summary>
/// Every backward of the float64 reference checked by central finite differences. Each test builds
/// a scalar loss L = Σ w ∘ y with random weights w, runs the reference backward with dy = w into
/// gradient buffers pre-filled with random values (so the `+=` rule is part of what is checked:
/// the gradient is what the backward added), and compares with (L(x+h) - L(x-h)) / 2h for every
/// input. Shapes are small and ragged. For ops IKernels has no backward kernel for (broadcasts,
/// reductions, copies, matmul), the backward is the recipe the engine will issue, written with the
/// reference ops themselves.
/// </summary>
public class ReferenceGradientTests
{
    // A gradient buffer that starts with random contents, as after an earlier contribution.
    private static double[] Prefilled(TestRandom rng, int n) => rng.Doubles(n, -2, 2);

    public static TheoryData<int, int, int> BroadcastShapes => new()
    {
        { 1, 1, 1 }, { 3, 1, 1 }, { 1, 7, 1 }, { 2, 5, 1 }, { 1, 4, 3 }, { 2, 3, 5 }, { 3, 1, 4 },
    };

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void AddBroadcast_x_and_b(int outer, int mid, int inner)
    {
        var rng = TestRandom.For($"add {outer} {mid} {inner}");
        int n = outer * mid * inner, nb = outer * inner;
        double alpha = -0.7;
        var x = rng.Doubles(n); var b = rng.Doubles(nb); var w = rng.Doubles(n);
        double Loss() { var y = new double[n]; R.AddBroadcast(x, b, y, outer, mid, inner, alpha); return Dot(w, y); }
        // dx += dy; db += alpha Σ_mid dy
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        var db0 = Prefilled(rng, nb); var db = (double[])db0.Clone();
        R.Scale(w, dx, n, 1.0, accumulate: true);
        R.SumMid(w, db, outer, mid, inner, alpha, accumulate: true);
        Verify("dx", x, Added(dx, dx0), Loss);
        Verify("db", b, Added(db, db0), Loss);
    }

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void MulBroadcast_x_and_b(int outer, int mid, int inner)
    {
        var rng = TestRandom.For($"mul {outer} {mid} {inner}");
        int n = outer * mid * inner, nb = outer * inner;
        var x = rng.Doubles(n); var b = rng.Doubles(nb); var w = rng.Doubles(n);
        double Loss() { var y = new double[n]; R.MulBroadcast(x, b, y, outer, mid, inner, accumulate: false); return Dot(w, y); }
        // dx += dy * broadcast(b); db += Σ_mid dy * x
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        var db0 = Prefilled(rng, nb); var db = (double[])db0.Clone();
        R.MulBroadcast(w, b, dx, outer, mid, inner, accumulate: true);
        R.MulSumMid(w, x, db, outer, mid, inner, accumulate: true);
        Verify("dx", x, Added(dx, dx0), Loss);
        Verify("db", b, Added(db, db0), Loss);
    }

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void SumMid_x(int outer, int mid, int inner)
    {
        var rng = TestRandom.For($"summid {outer} {mid} {inner}");
        int n = outer * mid * inner, ny = outer * inner;
        double alpha = 1.3;
        var x = rng.Doubles(n); var w = rng.Doubles(ny);
        double Loss() { var y = new double[ny]; R.SumMid(x, y, outer, mid, inner, alpha, accumulate: false); return Dot(w, y); }
        // dx += alpha broadcast(dy): AddBroadcast in place on dx.
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        R.AddBroadcast(dx, w, dx, outer, mid, inner, alpha);
        Verify("dx", x, Added(dx, dx0), Loss);
    }

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void MulSumMid_x_and_w(int outer, int mid, int inner)
    {
        var rng = TestRandom.For($"mulsummid {outer} {mid} {inner}");
        int n = outer * mid * inner, ny = outer * inner;
        var x = rng.Doubles(n); var v = rng.Doubles(n); var w = rng.Doubles(ny);
        double Loss() { var y = new double[ny]; R.MulSumMid(x, v, y, outer, mid, inner, accumulate: false); return Dot(w, y); }
        // dx += v * broadcast(dy), dv += x * broadcast(dy)
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        var dv0 = Prefilled(rng, n); var dv = (double[])dv0.Clone();
        R.MulBroadcast(v, w, dx, outer, mid, inner, accumulate: true);
        R.MulBroadcast(x, w, dv, outer, mid, inner, accumulate: true);
        Verify("dx", x, Added(dx, dx0), Loss);
        Verify("dw", v, Added(dv, dv0), Loss);
    }

    [Theory, InlineData(1), InlineData(7), InlineData(65)]
    public void Scale_x(int n)
    {
        var rng = TestRandom.For($"scale {n}");
        double alpha = -2.5;
        var x = rng.Doubles(n); var w = rng.Doubles(n);
        double Loss() { var y = new double[n]; R.Scale(x, y, n, alpha, accumulate: false); return Dot(w, y); }
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        R.Scale(w, dx, n, alpha, accumulate: true);
        Verify("dx", x, Added(dx, dx0), Loss);
    }

    [Fact]
    public void CopyStrided_head_split_and_its_inverse()
    {
        // x: [B, N, H, Dh] -> y: [B, H, N, Dh]; the backward is the inverse permutation, accumulating.
        int B = 2, N = 3, H = 2, Dh = 5, n = B * N * H * Dh;
        var split = new StridedCopy(B, H, N, Dh, 0, N * H * Dh, Dh, H * Dh, 0, H * N * Dh, N * Dh, Dh);
        var merge = new StridedCopy(B, H, N, Dh, 0, H * N * Dh, N * Dh, Dh, 0, N * H * Dh, Dh, H * Dh);
        CheckCopy("split", split, merge, n, n);
    }

    [Fact]
    public void CopyStrided_concat_along_tokens_with_offset()
    {
        // x: [2, 4, 3] written into tokens 2..5 of y: [2, 6, 3]; y's other tokens keep their values.
        var into = new StridedCopy(2, 4, 1, 3, 0, 12, 3, 0, 6, 18, 3, 0);
        var back = new StridedCopy(2, 4, 1, 3, 6, 18, 3, 0, 0, 12, 3, 0);
        CheckCopy("concat", into, back, 24, 36);
    }

    private static void CheckCopy(string what, StridedCopy forward, StridedCopy backward, int nx, int ny)
    {
        var rng = TestRandom.For($"copy {what}");
        var x = rng.Doubles(nx); var w = rng.Doubles(ny); var yInit = rng.Doubles(ny);
        double Loss() { var y = (double[])yInit.Clone(); R.CopyStrided(x, y, forward, accumulate: false); return Dot(w, y); }
        var dx0 = Prefilled(rng, nx); var dx = (double[])dx0.Clone();
        R.CopyStrided(w, dx, backward, accumulate: true);
        Verify("dx", x, Added(dx, dx0), Loss);
        // The accumulating forward: y += copy(x) has the same gradient.
        double LossAcc() { var y = (double[])yInit.Clone(); R.CopyStrided(x, y, forward, accumulate: true); return Dot(w, y); }
        Verify("dx (accumulating copy)", x, Added(dx, dx0), LossAcc);
    }

    [Theory, InlineData(1), InlineData(7), InlineData(33)]
    public void Gelu_x(int n)
    {
        var rng = TestRandom.For($"gelu {n}");
        var x = rng.Doubles(n, -5, 5); var w = rng.Doubles(n);
        double Loss() { var y = new double[n]; R.GeluForward(x, y, n); return Dot(w, y); }
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        R.GeluBackward(x, w, dx, n);
        Verify("dx", x, Added(dx, dx0), Loss);
    }

    [Theory, InlineData(7, 0.0f), InlineData(65, 0.3f), InlineData(129, 0.5f)]
    public void Dropout_x_with_fixed_mask(int n, float p)
    {
        var rng = TestRandom.For($"dropout {n} {p}");
        uint seed = 12345;
        var x = rng.Doubles(n); var w = rng.Doubles(n);
        double Loss() { var y = new double[n]; R.DropoutForward(x, y, n, p, seed); return Dot(w, y); }
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        R.DropoutBackward(w, dx, n, p, seed);
        Verify("dx", x, Added(dx, dx0), Loss);
    }

    public static TheoryData<bool, bool, int, int> MatMulCases()
    {
        var d = new TheoryData<bool, bool, int, int>();
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (int batch in new[] { 1, 3 })
                    foreach (int sharing in new[] { 0, 1, 2 }) // 0: none, 1: A shared (stride 0), 2: B shared
                        if (batch > 1 || sharing == 0) d.Add(ta, tb, batch, sharing);
        return d;
    }

    [Theory, MemberData(nameof(MatMulCases))]
    public void MatMul_a_and_b(bool transA, bool transB, int batch, int sharing)
    {
        var rng = TestRandom.For($"matmul {transA} {transB} {batch} {sharing}");
        int M = 3, N = 4, K = 5;
        var s = new MatMulShape(batch, M, N, K, transA, transB,
            sharing == 1 ? 0 : M * K, sharing == 2 ? 0 : K * N, M * N);
        double alpha = 0.8;
        var a = rng.Doubles(sharing == 1 ? M * K : batch * M * K);
        var b = rng.Doubles(sharing == 2 ? K * N : batch * K * N);
        var w = rng.Doubles(batch * M * N);
        var cInit = rng.Doubles(batch * M * N);
        double Loss() { var c = (double[])cInit.Clone(); R.MatMul(a, b, c, s, alpha, accumulate: true); return Dot(w, c); }
        var da0 = Prefilled(rng, a.Length); var da = (double[])da0.Clone();
        var db0 = Prefilled(rng, b.Length); var db = (double[])db0.Clone();
        R.MatMulBackward(a, b, w, da, db, s, alpha);
        Verify("da", a, Added(da, da0), Loss);
        Verify("db", b, Added(db, db0), Loss);
    }

    [Theory, InlineData(1, 1), InlineData(3, 7), InlineData(2, 17)]
    public void Softmax_x(int rows, int cols)
    {
        var rng = TestRandom.For($"softmax {rows} {cols}");
        int n = rows * cols;
        var x = rng.Doubles(n, -3, 3); var w = rng.Doubles(n);
        double Loss() { var y = new double[n]; R.SoftmaxForward(x, y, rows, cols); return Dot(w, y); }
        var y0 = new double[n]; R.SoftmaxForward(x, y0, rows, cols);
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        R.SoftmaxBackward(y0, w, dx, rows, cols);
        if (cols > 1) Verify("dx", x, Added(dx, dx0), Loss);
        else Assert.All(Added(dx, dx0), g => Assert.Equal(0.0, g, 1e-15)); // softmax of one element is constant 1
    }

    [Theory, InlineData(1, 2), InlineData(3, 7), InlineData(2, 17)]
    public void LogSoftmax_x(int rows, int cols)
    {
        var rng = TestRandom.For($"logsoftmax {rows} {cols}");
        int n = rows * cols;
        var x = rng.Doubles(n, -3, 3); var w = rng.Doubles(n);
        double Loss() { var y = new double[n]; R.LogSoftmaxForward(x, y, rows, cols); return Dot(w, y); }
        var y0 = new double[n]; R.LogSoftmaxForward(x, y0, rows, cols);
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        R.LogSoftmaxBackward(y0, w, dx, rows, cols);
        Verify("dx", x, Added(dx, dx0), Loss);
    }

    [Theory, InlineData(1, 2, 0.0), InlineData(5, 10, 0.0), InlineData(5, 10, 0.1), InlineData(3, 17, 0.3)]
    public void CrossEntropy_logits(int rows, int classes, double smoothing)
    {
        var rng = TestRandom.For($"ce {rows} {classes} {smoothing}");
        int n = rows * classes;
        var logits = rng.Doubles(n, -3, 3); var w = rng.Doubles(rows);
        var labels = rng.Labels(rows, classes).ToDouble();
        double Loss() { var l = new double[rows]; R.CrossEntropyForward(logits, labels, l, rows, classes, smoothing); return Dot(w, l); }
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        R.CrossEntropyBackward(logits, labels, w, dx, rows, classes, smoothing);
        Verify("dlogits", logits, Added(dx, dx0), Loss);
    }

    [Theory, InlineData(1, 2), InlineData(3, 7), InlineData(4, 19)]
    public void LayerNorm_x_gamma_beta(int rows, int cols)
    {
        var rng = TestRandom.For($"layernorm {rows} {cols}");
        int n = rows * cols;
        double eps = 1e-5;
        var x = rng.Doubles(n, -2, 2); var gamma = rng.Doubles(cols, 0.5, 1.5); var beta = rng.Doubles(cols);
        var w = rng.Doubles(n);
        double Loss()
        {
            var y = new double[n];
            R.LayerNormForward(x, gamma, beta, y, new double[rows], new double[rows], rows, cols, eps);
            return Dot(w, y);
        }
        var mean = new double[rows]; var rstd = new double[rows];
        R.LayerNormForward(x, gamma, beta, new double[n], mean, rstd, rows, cols, eps);
        var dx0 = Prefilled(rng, n); var dx = (double[])dx0.Clone();
        var dg0 = Prefilled(rng, cols); var dg = (double[])dg0.Clone();
        var db0 = Prefilled(rng, cols); var db = (double[])db0.Clone();
        R.LayerNormBackward(x, gamma, mean, rstd, w, dx, dg, db, rows, cols);
        Verify("dx", x, Added(dx, dx0), Loss);
        Verify("dgamma", gamma, Added(dg, dg0), Loss);
        Verify("dbeta", beta, Added(db, db0), Loss);
    }

    [Theory, InlineData(1, 1, 1, 0f), InlineData(2, 5, 3, 0f), InlineData(2, 5, 3, 0.25f), InlineData(3, 7, 4, 0.5f)]
    public void Attention_q_k_v(int bh, int n, int d, float dropoutP)
    {
        var rng = TestRandom.For($"attention {bh} {n} {d} {dropoutP}");
        int size = bh * n * d;
        double scale = 1.0 / Math.Sqrt(d);
        uint seed = 777;
        var q = rng.Doubles(size, -1.5, 1.5); var k = rng.Doubles(size, -1.5, 1.5); var v = rng.Doubles(size);
        var w = rng.Doubles(size);
        double Loss()
        {
            var o = new double[size];
            R.AttentionForward(q, k, v, o, new double[bh * n], bh, n, d, scale, dropoutP, seed);
            return Dot(w, o);
        }
        var o0 = new double[size]; var lse0 = new double[bh * n];
        R.AttentionForward(q, k, v, o0, lse0, bh, n, d, scale, dropoutP, seed);
        var dq0 = Prefilled(rng, size); var dq = (double[])dq0.Clone();
        var dk0 = Prefilled(rng, size); var dk = (double[])dk0.Clone();
        var dv0 = Prefilled(rng, size); var dv = (double[])dv0.Clone();
        R.AttentionBackward(q, k, v, o0, lse0, w, dq, dk, dv, bh, n, d, scale, dropoutP, seed);
        if (n > 1)
        {
            Verify("dq", q, Added(dq, dq0), Loss);
            Verify("dk", k, Added(dk, dk0), Loss);
        }
        else
        {
            // One key: P = 1 whatever q and k are, so their gradients are exactly zero.
            Assert.All(Added(dq, dq0), g => Assert.Equal(0.0, g, 1e-15));
            Assert.All(Added(dk, dk0), g => Assert.Equal(0.0, g, 1e-15));
        }
        Verify("dv", v, Added(dv, dv0), Loss);
    }

    [Fact]
    public void Attention_lse_is_the_logsumexp_of_the_scaled_scores()
    {
        var rng = TestRandom.For("attention lse");
        int bh = 2, n = 4, d = 3;
        var q = rng.Doubles(bh * n * d); var k = rng.Doubles(bh * n * d); var v = rng.Doubles(bh * n * d);
        var o = new double[bh * n * d]; var lse = new double[bh * n];
        R.AttentionForward(q, k, v, o, lse, bh, n, d, 0.5, 0f, 1);
        for (int h = 0; h < bh; h++)
            for (int i = 0; i < n; i++)
            {
                double sum = 0;
                for (int j = 0; j < n; j++)
                {
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += q[(h * n + i) * d + c] * k[(h * n + j) * d + c];
                    sum += Math.Exp(0.5 * dot);
                }
                Assert.Equal(Math.Log(sum), lse[h * n + i], 1e-13);
            }
    }
}
