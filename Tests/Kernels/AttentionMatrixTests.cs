using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

public sealed record AttentionCase(int BH, int N, int D, float DropoutP)
{
    public double Scale => (float)(1.0 / Math.Sqrt(D)); // the float the kernels receive
    public int Size => BH * N * D;

    public static IEnumerable<AttentionCase> For(bool slow) => slow
        ? [new(1, 1, 1, 0f), new(2, 5, 3, 0f), new(1, 9, 4, 0.2f), new(2, 17, 5, 0.1f), new(1, 33, 3, 0f)]
        : [new(1, 1, 1, 0f), new(2, 7, 3, 0f), new(3, 17, 8, 0.1f), new(2, 65, 16, 0f), new(1, 65, 33, 0.2f),
           new(4, 33, 7, 0.5f), new(2, 129, 9, 0f), new(12, 65, 16, 0.1f)];
}

/// <summary>
/// Fused attention against the unfused float64 reference. The bounds follow the data flow:
///   scores s_ij = scale q_i·k_j: |error| ≤ E_i = (d + 2) U scale max_j Σ|q_i||k_j|;
///   P_ij = exp(s_ij - lse_i): relative error relP_i = 2 E_i + (n + 2 R_i + 16) U, with R_i the
///     range of the row's scores (exp and softmax as in RowOpsMatrixTests; an online softmax's
///     rescalings are at most n more roundings, inside the n U);
///   o_i = Σ_j M P v_j: (relP_i + (n + 2) U) Σ_j M P |v_j|, computed by the reference on |v|;
///   lse_i: E_i + (n + 8) U + 2U |lse_i|.
/// Backward (inputs o and lse are the reference forward rounded to float, as a backend would save):
///   P from lse: relPb_i = relP_i + 2U |lse_i|; D_i = dO_i·o_i: (d + 4) U Σ|dO_i||o_i|;
///   dP_ij = M dO_i·v_j: (d + 2) U M Σ|dO_i||v_j|; dS = P (dP - D): errS = P (relPb |dP - D| + errdP + errD);
///   dq_i += scale Σ_j dS_ij k_j: scale Σ_j (errS_ij + (n + 4) U |dS_ij|) |k_j| + 2U (|dq0| + |added|);
///   dk_j likewise over i with q_i; dv_j += Σ_i M P dO_i: (relPb + (n + 4) U) Σ_i M P |dO_i| + 2U (...).
/// </summary>
[Collection(BackendCollection.Name)]
public class AttentionMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, AttentionCase> Rows => BackendMatrix.Rows(AttentionCase.For);

    /// <summary>Per-row score error E_i, relative P error relP_i and exact P (dropout factors applied separately).</summary>
    private sealed class RowErrors
    {
        public double[] E = [], RelP = [];
        public double[][] P = [];
    }

    private static RowErrors Analyse(AttentionCase c, double[] q, double[] k)
    {
        int rows = c.BH * c.N;
        var re = new RowErrors { E = new double[rows], RelP = new double[rows], P = new double[rows][] };
        for (int h = 0; h < c.BH; h++)
            for (int i = 0; i < c.N; i++)
            {
                int row = h * c.N + i;
                double maxAbsDot = 0, maxS = double.NegativeInfinity, minS = double.PositiveInfinity;
                for (int j = 0; j < c.N; j++)
                {
                    double abs = 0, dot = 0;
                    for (int t = 0; t < c.D; t++)
                    {
                        double a = q[(row) * c.D + t], b = k[(h * c.N + j) * c.D + t];
                        abs += Math.Abs(a * b); dot += a * b;
                    }
                    maxAbsDot = Math.Max(maxAbsDot, abs);
                    maxS = Math.Max(maxS, c.Scale * dot); minS = Math.Min(minS, c.Scale * dot);
                }
                re.E[row] = (c.D + 2) * U * c.Scale * maxAbsDot;
                re.RelP[row] = 2 * re.E[row] + (c.N + 2 * (maxS - minS) + 16) * U;
                re.P[row] = R.AttentionRow(q, k, h, i, c.N, c.D, c.Scale, out _);
            }
        return re;
    }

    [Theory, MemberData(nameof(Rows))]
    public void AttentionForward(string backend, AttentionCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"attention {c}");
        uint seed = rng.NextUInt();
        using var run = new OpRun(k);
        var q = run.With("q", rng.Floats(c.Size, -1.5, 1.5));
        var kk = run.With("k", rng.Floats(c.Size, -1.5, 1.5));
        var v = run.With("v", rng.Floats(c.Size));
        var o = run.Poisoned("o", c.Size);
        var lse = run.Poisoned("lse", c.BH * c.N);
        var re = Analyse(c, q.Ref, kk.Ref);
        var mag = new double[c.Size];
        R.AttentionForward(q.Ref, kk.Ref, v.Init.Abs(), mag, new double[c.BH * c.N], c.BH, c.N, c.D, c.Scale, c.DropoutP, seed);

        k.AttentionForward(q, kk, v, o, lse, c.BH, c.N, c.D, (float)c.Scale, c.DropoutP, seed);
        R.AttentionForward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, c.BH, c.N, c.D, (float)c.Scale, c.DropoutP, seed);
        run.Check(o, i => (re.RelP[i / c.D] + (c.N + 2) * U) * mag[i]);
        run.Check(lse, r => re.E[r] + (c.N + 8) * U + 2 * U * Math.Abs(lse.Ref[r]));
        run.CheckRest();
    }

    [Theory, MemberData(nameof(Rows))]
    public void AttentionBackward(string backend, AttentionCase c) => CheckBackward(fixture.Get(backend), c);

    // The GPU backends run the short-sequence backward as one launch (AttentionSmallKernels.Backward)
    // or as its two halves, depending on d; each is forced here on every case.
    public static TheoryData<string, AttentionCase> GpuRows => BackendMatrix.Rows(AttentionCase.For, gpuOnly: true);

    [GpuMatrixTheory, MemberData(nameof(GpuRows))]
    public void AttentionBackwardOneLaunch(string backend, AttentionCase c) => CheckBackwardForced(backend, c, AttentionBackwardLaunch.One);

    [GpuMatrixTheory, MemberData(nameof(GpuRows))]
    public void AttentionBackwardTwoLaunches(string backend, AttentionCase c) => CheckBackwardForced(backend, c, AttentionBackwardLaunch.Two);

    private void CheckBackwardForced(string backend, AttentionCase c, AttentionBackwardLaunch launches)
    {
        var k = (GpuKernels)fixture.Get(backend);
        k.AttentionBackwardLaunches = launches;
        try { CheckBackward(k, c); }
        finally { k.AttentionBackwardLaunches = AttentionBackwardLaunch.Auto; }
    }

    private static void CheckBackward(IKernels k, AttentionCase c)
    {
        var rng = TestRandom.For($"attention' {c}");
        uint seed = rng.NextUInt();
        float scale = (float)c.Scale;
        var qs = rng.Floats(c.Size, -1.5, 1.5); var ks = rng.Floats(c.Size, -1.5, 1.5); var vs = rng.Floats(c.Size);
        var oD = new double[c.Size]; var lseD = new double[c.BH * c.N];
        R.AttentionForward(qs.ToDouble(), ks.ToDouble(), vs.ToDouble(), oD, lseD, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        using var run = new OpRun(k);
        var q = run.With("q", qs); var kk = run.With("k", ks); var v = run.With("v", vs);
        var o = run.With("o", oD.ToFloat()); var lse = run.With("lse", lseD.ToFloat());
        var dO = run.With("dO", rng.Floats(c.Size));
        var dq = run.With("dq", rng.Floats(c.Size));
        var dk = run.With("dk", rng.Floats(c.Size));
        var dv = run.With("dv", rng.Floats(c.Size));

        // Error bounds, accumulated per output element as described in the class comment.
        var re = Analyse(c, q.Ref, kk.Ref);
        var bq = new double[c.Size]; var bk = new double[c.Size]; var bv = new double[c.Size];
        int N = c.N, Dm = c.D;
        for (int h = 0; h < c.BH; h++)
            for (int i = 0; i < N; i++)
            {
                int row = h * N + i, qi = row * Dm;
                double relPb = re.RelP[row] + 2 * U * Math.Abs(lse.Ref[row]);
                double absDo = 0, dotD = 0;
                for (int t = 0; t < Dm; t++) { absDo += Math.Abs(dO.Ref[qi + t] * o.Ref[qi + t]); }
                double errD = (Dm + 4) * U * absDo;
                var p = re.P[row];
                var dp = new double[N]; var m = new double[N];
                for (int j = 0; j < N; j++)
                {
                    m[j] = R.AttentionDropFactor(h, i, j, N, c.DropoutP, seed);
                    double dot = 0;
                    for (int t = 0; t < Dm; t++) dot += dO.Ref[qi + t] * v.Ref[(h * N + j) * Dm + t];
                    dp[j] = m[j] * dot;
                    dotD += p[j] * dp[j];
                }
                for (int j = 0; j < N; j++)
                {
                    int kj = (h * N + j) * Dm;
                    double absDP = 0;
                    for (int t = 0; t < Dm; t++) absDP += Math.Abs(dO.Ref[qi + t] * v.Ref[kj + t]);
                    double errdP = (Dm + 2) * U * m[j] * absDP;
                    double ds = p[j] * (dp[j] - dotD);
                    double errS = p[j] * (relPb * Math.Abs(dp[j] - dotD) + errdP + errD);
                    double sErr = scale * (errS + (N + 4) * U * Math.Abs(ds));
                    for (int t = 0; t < Dm; t++)
                    {
                        bq[qi + t] += sErr * Math.Abs(kk.Ref[kj + t]);
                        bk[kj + t] += sErr * Math.Abs(q.Ref[qi + t]);
                        bv[kj + t] += (relPb + (N + 4) * U) * m[j] * p[j] * Math.Abs(dO.Ref[qi + t]);
                    }
                }
            }

        k.AttentionBackward(q, kk, v, o, lse, dO, dq, dk, dv, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        R.AttentionBackward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, dO.Ref, dq.Ref, dk.Ref, dv.Ref, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        run.Check(dq, i => bq[i] + 2 * U * (Math.Abs(dq.Init[i]) + Math.Abs(dq.Ref[i] - dq.Init[i])));
        run.Check(dk, i => bk[i] + 2 * U * (Math.Abs(dk.Init[i]) + Math.Abs(dk.Ref[i] - dk.Init[i])));
        run.Check(dv, i => bv[i] + 2 * U * (Math.Abs(dv.Init[i]) + Math.Abs(dv.Ref[i] - dv.Init[i])));
        run.CheckRest();
    }
}
