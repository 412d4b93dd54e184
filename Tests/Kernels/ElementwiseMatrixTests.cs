using ViTScratch.Kernels;
using ViTScratch.Tests.Reference;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

// Elementwise and broadcast ops against the float64 reference. Error bounds are in units of
// U = 2^-24 per float operation on the magnitudes involved (FMA only tightens them).

public sealed record BroadcastCase(int Outer, int Mid, int Inner, float Alpha, bool Accumulate, bool InPlace)
{
    public int N => Outer * Mid * Inner;
    public int NB => Outer * Inner;

    public static IEnumerable<BroadcastCase> For(bool slow)
    {
        // equal shapes (mid = 1), scalar over rows (inner = 1), bias over rows (outer = 1), general.
        // Many rows over few columns ((1, 37, 33), (4, 257, 33)) take the GPU's two-stage column sum;
        // on the simulator (3, 65, 29) and (5001, 1, 1) are over the 4096 threads of one launch.
        // The CPU column sums go in blocks of 64 columns: 127 ends one short of a block, 192 (a
        // vit-tiny bias) fills three exactly (a block count one too high survived mutation testing).
        var shapes = slow
            ? new[] { (1, 1, 1), (1, 7, 1), (5, 1, 1), (1, 5, 3), (2, 3, 5), (3, 4, 1), (2, 1, 3), (1, 37, 33), (2, 19, 5), (3, 65, 29), (5001, 1, 1) }
            : new[] { (1, 1, 1), (1, 129, 1), (65, 1, 1), (1, 65, 7), (3, 7, 65), (2, 5, 129), (2, 129, 17), (5, 3, 1), (7, 1, 9), (1, 9, 16), (4, 257, 33), (300, 129, 1), (40_009, 1, 1), (2, 5, 127), (3, 9, 192) };
        int v = 0;
        foreach (var (o, m, i) in shapes)
        {
            v++;
            yield return new(o, m, i, v % 2 == 0 ? 1f : -0.75f, Accumulate: false, InPlace: false);
            yield return new(o, m, i, 0.5f, Accumulate: true, InPlace: false);
            yield return new(o, m, i, 1.25f, Accumulate: false, InPlace: true);
        }
    }
}

public sealed record ElementwiseCase(int N, float P, bool Accumulate)
{
    // Sizes straddle the 8- and 16-wide SIMD loops and the point where the CPU kernels go parallel;
    // on the simulator 8195 is past two rounds of an elementwise launch's 16 x 256 threads, so
    // the grid-stride loops wrap.
    public static int[] Sizes(bool slow) => slow ? [1, 7, 33, 8195] : [1, 7, 8, 15, 16, 17, 65, 129, 1000, 40_009];

    public static IEnumerable<ElementwiseCase> Plain(bool slow) => Sizes(slow).Select(n => new ElementwiseCase(n, 0f, false));

    public static IEnumerable<ElementwiseCase> WithAccumulate(bool slow) =>
        Sizes(slow).SelectMany(n => new[] { new ElementwiseCase(n, 0f, false), new ElementwiseCase(n, 0f, true) });

    public static IEnumerable<ElementwiseCase> Dropout(bool slow) =>
        Sizes(slow).SelectMany(n => new[] { 0f, 0.1f, 0.5f }.Select(p => new ElementwiseCase(n, p, false)));
}

[Collection(BackendCollection.Name)]
public class ElementwiseMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, BroadcastCase> AddRows => BackendMatrix.Rows(s => BroadcastCase.For(s).Where(c => !c.Accumulate));
    public static TheoryData<string, BroadcastCase> MulRows => BackendMatrix.Rows(BroadcastCase.For);
    public static TheoryData<string, BroadcastCase> ReduceRows => BackendMatrix.Rows(s => BroadcastCase.For(s).Where(c => !c.InPlace));
    public static TheoryData<string, ElementwiseCase> PlainRows => BackendMatrix.Rows(ElementwiseCase.Plain);
    public static TheoryData<string, ElementwiseCase> AccumulateRows => BackendMatrix.Rows(ElementwiseCase.WithAccumulate);
    public static TheoryData<string, ElementwiseCase> DropoutRows => BackendMatrix.Rows(ElementwiseCase.Dropout);

    // y = x + alpha b: one product and one sum, |error| ≤ 2U (|x| + |alpha b|).
    [Theory, MemberData(nameof(AddRows))]
    public void AddBroadcast(string backend, BroadcastCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"add {c}");
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N));
        var b = run.With("b", rng.Floats(c.NB));
        var y = c.InPlace ? x : run.Poisoned("y", c.N);
        var mag = new double[c.N];
        R.AddBroadcast(x.Init.Abs(), b.Init.Abs(), mag, c.Outer, c.Mid, c.Inner, Math.Abs(c.Alpha));
        k.AddBroadcast(x, b, y, c.Outer, c.Mid, c.Inner, c.Alpha);
        R.AddBroadcast(x.Ref, b.Ref, y.Ref, c.Outer, c.Mid, c.Inner, c.Alpha);
        run.Check(y, i => 2 * U * mag[i]);
        run.CheckRest();
    }

    // y (=|+=) x b: one product, plus one sum when accumulating: |error| ≤ 2U (|y0| + |x b|).
    [Theory, MemberData(nameof(MulRows))]
    public void MulBroadcast(string backend, BroadcastCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"mul {c}");
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N));
        var b = run.With("b", rng.Floats(c.NB));
        var y = c.InPlace ? x : c.Accumulate ? run.With("y", rng.Floats(c.N)) : run.Poisoned("y", c.N);
        var mag = c.Accumulate ? y.Init.Abs() : new double[c.N];
        R.MulBroadcast(x.Init.Abs(), b.Init.Abs(), mag, c.Outer, c.Mid, c.Inner, accumulate: true);
        k.MulBroadcast(x, b, y, c.Outer, c.Mid, c.Inner, c.Accumulate);
        R.MulBroadcast(x.Ref, b.Ref, y.Ref, c.Outer, c.Mid, c.Inner, c.Accumulate);
        run.Check(y, i => 2 * U * mag[i]);
        run.CheckRest();
    }

    // A sum of mid terms in any order: |error| ≤ (mid + 2) U (|alpha| Σ|x| + |y0|) (γ_n bound, plus
    // the scaling and the accumulation).
    [Theory, MemberData(nameof(ReduceRows))]
    public void SumMid(string backend, BroadcastCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"summid {c}");
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N));
        var y = c.Accumulate ? run.With("y", rng.Floats(c.NB)) : run.Poisoned("y", c.NB);
        var mag = c.Accumulate ? y.Init.Abs() : new double[c.NB];
        R.SumMid(x.Init.Abs(), mag, c.Outer, c.Mid, c.Inner, Math.Abs(c.Alpha), accumulate: true);
        k.SumMid(x, y, c.Outer, c.Mid, c.Inner, c.Alpha, c.Accumulate);
        R.SumMid(x.Ref, y.Ref, c.Outer, c.Mid, c.Inner, c.Alpha, c.Accumulate);
        run.Check(y, i => (c.Mid + 2) * U * mag[i]);
        run.CheckRest();
    }

    // A dot product of mid terms: |error| ≤ (mid + 2) U (Σ|x w| + |y0|).
    [Theory, MemberData(nameof(ReduceRows))]
    public void MulSumMid(string backend, BroadcastCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"mulsummid {c}");
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N));
        var w = run.With("w", rng.Floats(c.N));
        var y = c.Accumulate ? run.With("y", rng.Floats(c.NB)) : run.Poisoned("y", c.NB);
        var mag = c.Accumulate ? y.Init.Abs() : new double[c.NB];
        R.MulSumMid(x.Init.Abs(), w.Init.Abs(), mag, c.Outer, c.Mid, c.Inner, accumulate: true);
        k.MulSumMid(x, w, y, c.Outer, c.Mid, c.Inner, c.Accumulate);
        R.MulSumMid(x.Ref, w.Ref, y.Ref, c.Outer, c.Mid, c.Inner, c.Accumulate);
        run.Check(y, i => (c.Mid + 2) * U * mag[i]);
        run.CheckRest();
    }

    // y (=|+=) alpha x: |error| ≤ 2U (|y0| + |alpha x|).
    [Theory, MemberData(nameof(AccumulateRows))]
    public void Scale(string backend, ElementwiseCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"scale {c}");
        bool accumulate = c.Accumulate;
        float alpha = accumulate ? -3f : 0.7f;
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N, -2, 2));
        var y = accumulate ? run.With("y", rng.Floats(c.N)) : run.Poisoned("y", c.N);
        var mag = accumulate ? y.Init.Abs() : new double[c.N];
        R.Scale(x.Init.Abs(), mag, c.N, Math.Abs(alpha), accumulate: true);
        k.Scale(x, y, c.N, alpha, accumulate);
        R.Scale(x.Ref, y.Ref, c.N, alpha, accumulate);
        run.Check(y, i => 2 * U * mag[i]);
        run.CheckRest();
    }

    // The kernels' Φ(x) = (1 + erf(x/√2)) / 2 uses the float32 A&S erf, whose error (formula plus
    // float evaluation) is ReferenceErfTests.KernelErfError; half of it reaches Φ, plus 4U for the
    // scaling by 1/√2 and the final (1 + erf)/2.
    private const double PhiError = ReferenceErfTests.KernelErfError / 2 + 4 * U;

    // gelu = x Φ(x): |error| ≤ |x| PhiError + U |y|.
    [Theory, MemberData(nameof(PlainRows))]
    public void GeluForward(string backend, ElementwiseCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"gelu {c}");
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N, -6, 6));
        var y = run.Poisoned("y", c.N);
        k.GeluForward(x, y, c.N);
        R.GeluForward(x.Ref, y.Ref, c.N);
        run.Check(y, i => Math.Abs(x.Ref[i]) * PhiError + U * Math.Abs(y.Ref[i]));
        run.CheckRest();
    }

    // gelu' = Φ(x) + x φ(x). Φ carries PhiError; φ = exp(-x²/2)/√(2π) carries the relative error of
    // exp (a few ulps, 8U) plus that of its rounded argument (x²/2 · 2U), times |x|. Then
    // dx0 + dy gelu' adds 2U (|dx0| + |dy gelu'|).
    [Theory, MemberData(nameof(PlainRows))]
    public void GeluBackward(string backend, ElementwiseCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"gelu' {c}");
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N, -6, 6));
        var dy = run.With("dy", rng.Floats(c.N));
        var dx = run.With("dx", rng.Floats(c.N));
        k.GeluBackward(x, dy, dx, c.N);
        R.GeluBackward(x.Ref, dy.Ref, dx.Ref, c.N);
        run.Check(dx, i =>
        {
            double xv = x.Ref[i], xphi = Math.Abs(xv * ReferenceErf.Pdf(xv));
            double dErr = PhiError + xphi * (8 + xv * xv) * U;
            return Math.Abs(dy.Ref[i]) * dErr + 2 * U * (Math.Abs(dx.Init[i]) + Math.Abs(dy.Ref[i] * R.GeluDerivative(xv)));
        });
        run.CheckRest();
    }

    // y = x keep / (1 - p): 1 - p, its reciprocal and the product each round once: ≤ 4U |y|.
    // The mask itself is the shared hash, so a dropped element must be exactly zero.
    [Theory, MemberData(nameof(DropoutRows))]
    public void DropoutForward(string backend, ElementwiseCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"dropout {c}");
        uint seed = rng.NextUInt();
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.N));
        var y = run.Poisoned("y", c.N);
        k.DropoutForward(x, y, c.N, c.P, seed);
        R.DropoutForward(x.Ref, y.Ref, c.N, c.P, seed);
        run.Check(y, i => 4 * U * Math.Abs(y.Ref[i]));
        run.CheckRest();
    }

    // dx += dy keep / (1 - p): 4U |dy keep/(1-p)| + 2U |dx0|.
    [Theory, MemberData(nameof(DropoutRows))]
    public void DropoutBackward(string backend, ElementwiseCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"dropout' {c}");
        uint seed = rng.NextUInt();
        using var run = new OpRun(k);
        var dy = run.With("dy", rng.Floats(c.N));
        var dx = run.With("dx", rng.Floats(c.N));
        k.DropoutBackward(dy, dx, c.N, c.P, seed);
        R.DropoutBackward(dy.Ref, dx.Ref, c.N, c.P, seed);
        run.Check(dx, i => 4 * U * Math.Abs(dy.Ref[i] * R.DropoutFactor(seed, (uint)i, c.P)) + 2 * U * Math.Abs(dx.Init[i]));
        run.CheckRest();
    }
}
