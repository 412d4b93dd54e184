using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;
using static ViTScratch.Tests.Reference.FiniteDifference;
using R = ViTScratch.Tests.Reference.ReferenceKernels;

namespace ViTScratch.Tests.Reference;

/// <summary>
/// The backward recipes of the engine ops that reach the kernels through a layout or a composition,
/// checked in float64 by central finite differences of the op's dense definition
/// (ReferenceKernels.EngineOps.cs). Each recipe is what Engine/Ops issues: the same kernel calls
/// with the same layout arguments (broadcast [outer, mid, inner], StridedCopy descriptors reversed,
/// the bias's column sum), run on the float64 reference kernels. Where the engine's forward is a
/// layout too, it is first checked to reproduce the dense definition exactly. As in
/// ReferenceGradientTests, gradient buffers start random and the check is on what was added.
/// </summary>
public class EngineOpReferenceGradientTests
{
    private static double[] Prefilled(TestRandom rng, int n) => rng.Doubles(n, -2, 2);

    [Theory, InlineData(1, 1, 1), InlineData(6, 5, 4), InlineData(7, 3, 9)]
    public void Linear_with_bias_x_weight_bias(int rows, int inFeatures, int outFeatures)
    {
        // Ops.Linear: [rows, in] x [out, in]ᵀ + bias[out], one product (MatMulShape.Single, TransB);
        // backward: the two products and dbias = SumMid(dC, 1, rows, out).
        var rng = TestRandom.For($"linear+bias {rows} {inFeatures} {outFeatures}");
        var s = MatMulShape.Single(rows, outFeatures, inFeatures, transA: false, transB: true);
        var x = rng.Doubles(rows * inFeatures); var wt = rng.Doubles(outFeatures * inFeatures); var bias = rng.Doubles(outFeatures);
        var w = rng.Doubles(rows * outFeatures);
        double Loss()
        {
            var y = new double[rows * outFeatures];
            R.MatMulBias(x, wt, y, s, 1, accumulate: false, bias);
            return Dot(w, y);
        }
        var dx0 = Prefilled(rng, x.Length); var dx = (double[])dx0.Clone();
        var dw0 = Prefilled(rng, wt.Length); var dw = (double[])dw0.Clone();
        var db0 = Prefilled(rng, bias.Length); var db = (double[])db0.Clone();
        R.MatMulBackward(x, wt, w, dx, dw, s, 1);
        R.SumMid(w, db, 1, rows, outFeatures, 1, accumulate: true);
        Verify("dx", x, Added(dx, dx0), Loss);
        Verify("dweight", wt, Added(dw, dw0), Loss);
        Verify("dbias", bias, Added(db, db0), Loss);
    }

    [Theory, InlineData(1, 1, 1), InlineData(6, 5, 4), InlineData(7, 3, 9)]
    public void LinearGelu_x_weight_bias(int rows, int inFeatures, int outFeatures)
    {
        // Ops.LinearGelu: h = [rows, in] x [out, in]ᵀ + bias, y = GELU(h); backward: GeluBiasBackward
        // (dh = dy GELU'(h) written, dbias += its column sums), then the Linear's two products on dh.
        var rng = TestRandom.For($"linear+gelu {rows} {inFeatures} {outFeatures}");
        var s = MatMulShape.Single(rows, outFeatures, inFeatures, transA: false, transB: true);
        var x = rng.Doubles(rows * inFeatures); var wt = rng.Doubles(outFeatures * inFeatures); var bias = rng.Doubles(outFeatures);
        var w = rng.Doubles(rows * outFeatures);
        double[] PreActivation()
        {
            var h = new double[rows * outFeatures];
            R.MatMulBias(x, wt, h, s, 1, accumulate: false, bias);
            return h;
        }
        double Loss()
        {
            var h = PreActivation();
            var y = new double[h.Length];
            R.GeluForward(h, y, h.Length);
            return Dot(w, y);
        }
        var dx0 = Prefilled(rng, x.Length); var dx = (double[])dx0.Clone();
        var dw0 = Prefilled(rng, wt.Length); var dw = (double[])dw0.Clone();
        var db0 = Prefilled(rng, bias.Length); var db = (double[])db0.Clone();
        var dh = Prefilled(rng, rows * outFeatures);                      // overwritten: accumulateDx false
        R.GeluBiasBackward(PreActivation(), w, dh, db, rows, outFeatures, accumulateDx: false, accumulateBias: true);
        R.MatMulBackward(x, wt, dh, dx, dw, s, 1);
        Verify("dx", x, Added(dx, dx0), Loss);
        Verify("dweight", wt, Added(dw, dw0), Loss);
        Verify("dbias", bias, Added(db, db0), Loss);
    }

    [Theory, InlineData(1, 2), InlineData(3, 7), InlineData(4, 16)]
    public void AddLayerNorm_both_inputs_and_parameters(int rows, int cols)
    {
        // Ops.AddLayerNorm: s = a + b, y = LayerNorm(s); the loss reads both (the sum also feeds the
        // next residual add). Backward: LayerNormBackward adds into ds (which holds the gradient
        // from s's other reader), then the add's backward hands ds to a and to b.
        var rng = TestRandom.For($"add+layernorm {rows} {cols}");
        int n = rows * cols;
        var a = rng.Doubles(n); var b = rng.Doubles(n);
        var gamma = rng.Doubles(cols, 0.5, 1.5); var beta = rng.Doubles(cols);
        var ws = rng.Doubles(n); var wy = rng.Doubles(n);
        const double eps = 1e-5;
        double Loss()
        {
            var sum = new double[n]; var y = new double[n];
            R.AddLayerNormForward(a, b, sum, gamma, beta, y, new double[rows], new double[rows], rows, cols, eps);
            return Dot(ws, sum) + Dot(wy, y);
        }
        var s = new double[n]; var mean = new double[rows]; var rstd = new double[rows];
        R.AddLayerNormForward(a, b, s, gamma, beta, new double[n], mean, rstd, rows, cols, eps);
        var ds = (double[])ws.Clone();
        var dg0 = Prefilled(rng, cols); var dg = (double[])dg0.Clone();
        var dbeta0 = Prefilled(rng, cols); var dbeta = (double[])dbeta0.Clone();
        R.LayerNormBackward(s, gamma, mean, rstd, wy, ds, dg, dbeta, rows, cols);
        var da0 = Prefilled(rng, n); var da = (double[])da0.Clone();
        var db0 = Prefilled(rng, n); var db = (double[])db0.Clone();
        R.Scale(ds, da, n, 1, accumulate: true);
        R.Scale(ds, db, n, 1, accumulate: true);
        Verify("da", a, Added(da, da0), Loss);
        Verify("db", b, Added(db, db0), Loss);
        Verify("dgamma", gamma, Added(dg, dg0), Loss);
        Verify("dbeta", beta, Added(dbeta, dbeta0), Loss);
    }

    /// <summary>A broadcast as the user writes it, and the kernel layout Ops.BroadcastLayout gives it.</summary>
    public sealed record BroadcastCase(string Name, int[] Left, int[] Right, bool Multiply, double Alpha, int Outer, int Mid, int Inner)
    {
        public override string ToString() => Name;
    }

    public static TheoryData<BroadcastCase> BroadcastCases => new()
    {
        new("add same shape", [3, 4], [3, 4], false, 1, 12, 1, 1),
        new("add bias on the right", [2, 3, 7], [7], false, 1, 1, 6, 7),
        new("add bias on the left", [7], [2, 3, 7], false, 1, 1, 6, 7),
        new("add positional [1, N, D]", [2, 3, 5], [1, 3, 5], false, 1, 1, 2, 15),
        new("add positional on the left", [1, 3, 5], [2, 3, 5], false, 1, 1, 2, 15),
        new("add scalar", [4, 3], [1], false, 1, 1, 12, 1),
        new("add scalar on the left", [1], [4, 3], false, 1, 1, 12, 1),
        new("sub bias", [3, 9], [9], false, -1, 1, 3, 9),
        new("sub scalar", [2, 5], [1], false, -1, 1, 10, 1),
        new("mul same shape", [5, 3], [5, 3], true, 1, 15, 1, 1),
        new("mul bias on the right", [2, 5, 3], [3], true, 1, 1, 10, 3),
        new("mul bias on the left", [3], [2, 5, 3], true, 1, 1, 10, 3),
        new("mul positional on the left", [1, 4, 2], [3, 4, 2], true, 1, 1, 3, 8),
        new("mul scalar on the left", [1], [6], true, 1, 1, 6, 1),
    };

    [Theory, MemberData(nameof(BroadcastCases))]
    public void Broadcast_layouts_both_operands(BroadcastCase c)
    {
        var rng = TestRandom.For($"broadcast {c.Name}");
        int nl = Count(c.Left), nr = Count(c.Right);
        var left = rng.Doubles(nl); var right = rng.Doubles(nr);
        // Add and Mul put the larger operand first (they commute); Sub keeps the order.
        bool swap = c.Alpha == 1 && nr > nl;
        int[] yShape = swap ? c.Right : c.Left;
        int n = Count(yShape);
        var w = rng.Doubles(n);
        double Loss() => Dot(w, R.Broadcast(yShape, left, c.Left, right, c.Right, c.Multiply, c.Alpha));

        var (big, small) = swap ? (right, left) : (left, right);
        // The forward through the layout is the dense definition.
        var y = new double[n];
        if (c.Multiply) R.MulBroadcast(big, small, y, c.Outer, c.Mid, c.Inner, accumulate: false);
        else R.AddBroadcast(big, small, y, c.Outer, c.Mid, c.Inner, c.Alpha);
        Assert.Equal(R.Broadcast(yShape, left, c.Left, right, c.Right, c.Multiply, c.Alpha), y);

        // The backward the engine issues (Ops.AddScaled / Ops.Mul).
        var dBig0 = Prefilled(rng, big.Length); var dBig = (double[])dBig0.Clone();
        var dSmall0 = Prefilled(rng, small.Length); var dSmall = (double[])dSmall0.Clone();
        if (c.Multiply)
        {
            R.MulBroadcast(w, small, dBig, c.Outer, c.Mid, c.Inner, accumulate: true);
            R.MulSumMid(w, big, dSmall, c.Outer, c.Mid, c.Inner, accumulate: true);
        }
        else
        {
            R.Scale(w, dBig, n, 1, accumulate: true);
            R.SumMid(w, dSmall, c.Outer, c.Mid, c.Inner, c.Alpha, accumulate: true);
        }
        Verify("d(larger operand)", big, Added(dBig, dBig0), Loss);
        Verify("d(broadcast operand)", small, Added(dSmall, dSmall0), Loss);
    }

    private static int Count(int[] shape) => shape.Aggregate(1, (p, d) => p * d);

    // Ops.Shape.cs's descriptors, written out for the shapes below; Reverse swaps source and destination.
    private static StridedCopy Reverse(StridedCopy l) => new(l.N0, l.N1, l.N2, l.Inner,
        l.DstOffset, l.D0, l.D1, l.D2, l.SrcOffset, l.S0, l.S1, l.S2);

    [Theory, InlineData(0), InlineData(2), InlineData(3)]
    public void SelectToken_x(int index)
    {
        int b = 3, n = 4, d = 5;
        var layout = new StridedCopy(1, 1, b, d, index * d, 0, 0, n * d, 0, 0, 0, d);
        CheckTokenCopy($"select {index}", b, n, d, [index], [layout]);
    }

    [Fact]
    public void GatherTokens_x_in_runs()
    {
        // Tokens 0 | 2, 3 | 6 of 7: three runs, one StridedCopy each, landing at rows 0, 1, 3.
        int b = 2, n = 7, d = 5, k = 4;
        StridedCopy Run(int from, int count, int to) => new(1, 1, b, count * d, from * d, 0, 0, n * d, to * d, 0, 0, k * d);
        CheckTokenCopy("gather", b, n, d, [0, 2, 3, 6], [Run(0, 1, 0), Run(2, 2, 1), Run(6, 1, 3)]);
    }

    private static void CheckTokenCopy(string what, int b, int n, int d, int[] tokens, StridedCopy[] runs)
    {
        var rng = TestRandom.For($"tokens {what}");
        var x = rng.Doubles(b * n * d);
        int ny = b * tokens.Length * d;
        var w = rng.Doubles(ny);
        var y = new double[ny];
        foreach (var run in runs) R.CopyStrided(x, y, run, accumulate: false);
        Assert.Equal(R.TakeTokens(x, b, n, d, tokens), y);
        // Backward: the gradient zeroed (tokens left out get none), then every run reversed, adding.
        var dx = new double[x.Length];
        foreach (var run in runs) R.CopyStrided(w, dx, Reverse(run), accumulate: true);
        Verify("dx", x, dx, () => Dot(w, R.TakeTokens(x, b, n, d, tokens)));
    }

    [Theory, InlineData(1, 5), InlineData(3, 5), InlineData(4, 6)]
    public void ExpandBatch_x(int batch, int inner)
    {
        var rng = TestRandom.For($"expand {batch} {inner}");
        var x = rng.Doubles(inner); var w = rng.Doubles(batch * inner);
        var y = new double[batch * inner];
        R.CopyStrided(x, y, new StridedCopy(1, 1, batch, inner, 0, 0, 0, 0, 0, 0, 0, inner), accumulate: false);
        Assert.Equal(R.ExpandBatch(x, batch), y);
        var dx0 = Prefilled(rng, inner); var dx = (double[])dx0.Clone();
        R.SumMid(w, dx, 1, batch, inner, 1, accumulate: true);
        Verify("dx", x, Added(dx, dx0), () => Dot(w, R.ExpandBatch(x, batch)));
    }

    [Theory, InlineData(2, 1, 4, 5), InlineData(1, 3, 2, 4), InlineData(3, 2, 1, 3)]
    public void ConcatTokens_a_and_b(int batch, int na, int nb, int d)
    {
        var rng = TestRandom.For($"concat {batch} {na} {nb} {d}");
        int n = na + nb;
        var la = new StridedCopy(1, 1, batch, na * d, 0, 0, 0, na * d, 0, 0, 0, n * d);
        var lb = new StridedCopy(1, 1, batch, nb * d, 0, 0, 0, nb * d, na * d, 0, 0, n * d);
        var a = rng.Doubles(batch * na * d); var c = rng.Doubles(batch * nb * d); var w = rng.Doubles(batch * n * d);
        var y = new double[batch * n * d];
        R.CopyStrided(a, y, la, accumulate: false);
        R.CopyStrided(c, y, lb, accumulate: false);
        Assert.Equal(R.ConcatTokens(a, c, batch, na, nb, d), y);
        var da0 = Prefilled(rng, a.Length); var da = (double[])da0.Clone();
        var dc0 = Prefilled(rng, c.Length); var dc = (double[])dc0.Clone();
        R.CopyStrided(w, da, Reverse(la), accumulate: true);
        R.CopyStrided(w, dc, Reverse(lb), accumulate: true);
        double Loss() => Dot(w, R.ConcatTokens(a, c, batch, na, nb, d));
        Verify("da", a, Added(da, da0), Loss);
        Verify("db", c, Added(dc, dc0), Loss);
    }

    [Theory, InlineData(1, 1, 2, 2, 1), InlineData(2, 3, 4, 6, 2), InlineData(1, 2, 9, 6, 3)]
    public void Patchify_images(int b, int c, int h, int wd, int p)
    {
        var rng = TestRandom.For($"patchify {b} {c} {h} {wd} {p}");
        var images = rng.Doubles(b * c * h * wd); var w = rng.Doubles(images.Length);
        var d0 = Prefilled(rng, images.Length); var d = (double[])d0.Clone();
        R.PatchifyBackward(w, d, b, c, h, wd, p);
        Verify("dimages", images, Added(d, d0), () => Dot(w, R.Patchify(images, b, c, h, wd, p)));
    }

    [Theory, InlineData(1, 1, 1, 1, 0f), InlineData(2, 5, 2, 3, 0f), InlineData(1, 6, 3, 2, 0.2f), InlineData(2, 4, 2, 4, 0.5f)]
    public void AttentionPacked_qkv(int batch, int n, int heads, int d, float dropoutP)
    {
        var rng = TestRandom.For($"attention packed {batch} {n} {heads} {d} {dropoutP}");
        double scale = 1.0 / Math.Sqrt(d);
        uint seed = 99;
        var qkv = rng.Doubles(batch * n * 3 * heads * d, -1.5, 1.5);
        var w = rng.Doubles(batch * n * heads * d);
        var dqkv0 = Prefilled(rng, qkv.Length); var dqkv = (double[])dqkv0.Clone();
        R.AttentionPackedBackward(qkv, w, dqkv, batch, n, heads, d, scale, dropoutP, seed);
        Verify("dqkv", qkv, Added(dqkv, dqkv0), () => Dot(w, R.AttentionPacked(qkv, batch, n, heads, d, scale, dropoutP, seed)));
    }

    [Theory, InlineData(1, 2, 1), InlineData(2, 5, 3), InlineData(3, 7, 4)]
    public void AttentionUnfused_q_k_v(int bh, int n, int d)
    {
        var rng = TestRandom.For($"attention unfused {bh} {n} {d}");
        int size = bh * n * d;
        double scale = 1.0 / Math.Sqrt(d);
        var q = rng.Doubles(size, -1.5, 1.5); var k = rng.Doubles(size, -1.5, 1.5); var v = rng.Doubles(size);
        var w = rng.Doubles(size);
        var p = new double[bh * n * n];
        var o = R.AttentionUnfused(q, k, v, bh, n, d, scale, p);

        // The composition is the same function as the fused definition.
        var fused = new double[size];
        R.AttentionForward(q, k, v, fused, new double[bh * n], bh, n, d, scale, 0f, 0);
        for (int i = 0; i < size; i++) Assert.Equal(fused[i], o[i], 1e-13);

        var dq0 = Prefilled(rng, size); var dq = (double[])dq0.Clone();
        var dk0 = Prefilled(rng, size); var dk = (double[])dk0.Clone();
        var dv0 = Prefilled(rng, size); var dv = (double[])dv0.Clone();
        R.AttentionUnfusedBackward(q, k, v, p, w, dq, dk, dv, bh, n, d, scale);
        double Loss() => Dot(w, R.AttentionUnfused(q, k, v, bh, n, d, scale, new double[bh * n * n]));
        Verify("dq", q, Added(dq, dq0), Loss);
        Verify("dk", k, Added(dk, dk0), Loss);
        Verify("dv", v, Added(dv, dv0), Loss);
    }
}
