using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

/// <summary>Clip: no norm buffer, clipping active (norm above maxNorm), inactive, or disabled (maxNorm 0).</summary>
public enum Clip { None, Active, Inactive, Disabled }

public sealed record OptimizerCase(int N, Clip Clip, int Step, float WeightDecay, float Momentum, bool Nesterov)
{
    public static IEnumerable<OptimizerCase> For(bool slow)
    {
        int[] sizes = slow ? [1, 7, 33, 5001] : [1, 7, 17, 65, 129, 40_009];   // 5001: the simulator's grid-stride loop wraps
        int v = 0;
        foreach (int n in sizes)
            foreach (Clip clip in Enum.GetValues<Clip>())
            {
                v++;
                yield return new(n, clip, v % 2 == 0 ? 1 : 1000, v % 3 == 0 ? 0f : 0.05f, (v % 3) switch { 0 => 0f, _ => 0.9f }, Nesterov: v % 4 == 1);
            }
    }
}

[Collection(BackendCollection.Name)]
public class OptimizerMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, OptimizerCase> Rows => BackendMatrix.Rows(OptimizerCase.For);
    public static TheoryData<string, OptimizerCase> SizeRows => BackendMatrix.Rows(s => OptimizerCase.For(s).Where(c => c.Clip == Clip.None));

    // A sum of n squares: (n + 2) U Σx² + 2U |r0| (float accumulation in any order; the CPU sums in double).
    [Theory, MemberData(nameof(SizeRows))]
    public void SumSquares(string backend, OptimizerCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"sumsq {c}");
        foreach (bool accumulate in new[] { false, true })
        {
            using var run = new OpRun(k);
            var x = run.With("x", rng.Floats(c.N + 2, -2, 2)); // 2 elements past n must not count
            var r = accumulate ? run.With("result", [12.5f]) : run.Poisoned("result", 1);
            double sumSq = 0;
            for (int i = 0; i < c.N; i++) sumSq += x.Ref[i] * x.Ref[i];
            k.SumSquares(x, c.N, r, accumulate);
            R.SumSquares(x.Ref, c.N, r.Ref, accumulate);
            run.Check(r, _ => (c.N + 2) * U * sumSq + 2 * U * (accumulate ? 12.5 : 0));
            run.CheckRest();
        }
    }

    // Data for one step: parameters, a gradient, optimizer state, and the squared norm buffer.
    private static (float[] p, float[] g, float[] m, float[] v, float[]? normSq, float maxNorm) Data(TestRandom rng, OptimizerCase c)
    {
        var p = rng.Floats(c.N); var g = rng.Floats(c.N, -0.1, 0.1);
        var m = rng.Floats(c.N, -0.05, 0.05); var v = rng.Floats(c.N, 1e-6, 0.01);
        double sq = 0;
        foreach (float x in g) sq += (double)x * x;
        float norm = (float)Math.Sqrt(sq);
        return c.Clip switch
        {
            Clip.None => (p, g, m, v, null, 1f),
            Clip.Active => (p, g, m, v, [(float)sq], 0.5f * norm),
            Clip.Inactive => (p, g, m, v, [(float)sq], 2f * norm),
            _ => (p, g, m, v, [(float)sq], 0f),
        };
    }

    // The clip factor maxNorm / (sqrt(nsq) + 1e-6) carries 4U (sqrt, add, divide, and nsq's rounding).
    private static double ClipError(OptimizerCase c) => c.Clip == Clip.Active ? 4 * U : 0;

    // AdamW, with G = |clip g| and relative error e = clip error + U on it:
    //   m: (e + 4U)(b1 |m0| + (1-b1) G) + U |m|;   v: (2e + 6U)(b2 v0 + (1-b2) G²);
    //   p = p0 (1 - lr wd) - lr r, r = mhat / (sqrt(vhat) + eps): the decay factor is rounded (3U |p0|);
    //   r inherits m's absolute error over the denominator and half of v's relative error, plus
    //   10U for the bias corrections (float here, double in the reference), sqrt, add, divide:
    //   lr ((errM / bc1) / (sqrt(vhat) + eps) + |r| (errV / 2v + 10U)) + 2U |p|.
    [Theory, MemberData(nameof(Rows))]
    public void AdamWStep(string backend, OptimizerCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"adamw {c}");
        var (ps, gs, ms, vs, normSq, maxNorm) = Data(rng, c);
        var args = new AdamWArgs(Lr: 1e-3f, Beta1: 0.9f, Beta2: 0.999f, Eps: 1e-8f, WeightDecay: c.WeightDecay, Step: c.Step);
        using var run = new OpRun(k);
        var p = run.With("param", ps); var g = run.With("grad", gs); var m = run.With("m", ms); var v = run.With("v", vs);
        var nsq = normSq is null ? null : run.With("gradNormSq", normSq);
        k.AdamWStep(p, g, m, v, c.N, args, nsq?.Dev, maxNorm);
        R.AdamWStep(p.Ref, g.Ref, m.Ref, v.Ref, c.N, args, nsq?.Ref, maxNorm);

        double clip = R.ClipFactor(nsq?.Ref, maxNorm), e = ClipError(c) + U;
        double b1 = args.Beta1, b2 = args.Beta2, lr = args.Lr, eps = args.Eps;
        double bc1 = 1 - Math.Pow(b1, c.Step), bc2 = 1 - Math.Pow(b2, c.Step);
        double ErrM(int i) => (e + 4 * U) * (b1 * Math.Abs(ms[i]) + (1 - b1) * Math.Abs(gs[i] * clip)) + U * Math.Abs(m.Ref[i]);
        double ErrV(int i) => (2 * e + 6 * U) * (b2 * vs[i] + (1 - b2) * gs[i] * clip * gs[i] * clip);
        run.Check(m, ErrM);
        run.Check(v, ErrV);
        run.Check(p, i =>
        {
            double den = Math.Sqrt(v.Ref[i] / bc2) + eps, r = m.Ref[i] / bc1 / den;
            return 3 * U * Math.Abs(ps[i]) + lr * (ErrM(i) / bc1 / den + Math.Abs(r) * (ErrV(i) / (2 * v.Ref[i]) + 10 * U))
                   + 2 * U * Math.Abs(p.Ref[i]);
        });
        run.CheckRest();
    }

    // SGD, with G = |clip g| + |wd p0| and e = clip error: g' = clip g + wd p0 within (e + 2U) G;
    // buf = mu buf0 + g' within (e + 4U)(G + |mu buf0|); the Nesterov update g' + mu buf within
    // (e + 6U)(G + |mu| (G + |mu buf0|) + |mu buf|); p = p0 - lr update adds 2U (|p0| + |lr update|).
    [Theory, MemberData(nameof(Rows))]
    public void SgdStep(string backend, OptimizerCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"sgd {c}");
        var (ps, gs, bufs, _, normSq, maxNorm) = Data(rng, c);
        bool first = c.Step == 1;
        var args = new SgdArgs(Lr: 0.05f, Momentum: c.Momentum, Nesterov: c.Nesterov, WeightDecay: c.WeightDecay, FirstStep: first);
        using var run = new OpRun(k);
        var p = run.With("param", ps); var g = run.With("grad", gs); var buf = run.With("momentum", bufs);
        var nsq = normSq is null ? null : run.With("gradNormSq", normSq);
        k.SgdStep(p, g, buf, c.N, args, nsq?.Dev, maxNorm);
        R.SgdStep(p.Ref, g.Ref, buf.Ref, c.N, args, nsq?.Ref, maxNorm);

        double clip = R.ClipFactor(nsq?.Ref, maxNorm), e = ClipError(c), mu = c.Momentum, lr = args.Lr;
        double G(int i) => Math.Abs(gs[i] * clip) + Math.Abs((double)c.WeightDecay * ps[i]);
        double Prev(int i) => first ? 0 : Math.Abs(mu * bufs[i]);
        double ErrBuf(int i) => (e + 4 * U) * (G(i) + Prev(i));
        double ErrUpdate(int i) => mu == 0 ? (e + 2 * U) * G(i)
            : c.Nesterov ? (e + 6 * U) * (G(i) + mu * (G(i) + Prev(i)) + Math.Abs(mu * buf.Ref[i]))
            : ErrBuf(i);
        if (mu != 0) run.Check(buf, ErrBuf); // with mu = 0 the buffer must be left alone: CheckRest
        run.Check(p, i => lr * ErrUpdate(i) + 2 * U * (Math.Abs(ps[i]) + Math.Abs(p.Ref[i] - ps[i])) + U * Math.Abs(p.Ref[i]));
        run.CheckRest();
    }
}
