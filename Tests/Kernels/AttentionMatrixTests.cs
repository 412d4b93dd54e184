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

    // The model's own head shapes come last: (N, d) = (65, 64) for vit-tiny-like models on 32x32
    // images with patch 4 (the GPU fast path at 31.6 of its 32 KB of shared memory), and (17, 32)
    // for 16 patches of 32-wide heads; one head or two is enough on the simulator.
    // The GPU fast path's edges (AttentionKernels.cs): one key (P = 1); d = 6, two pad
    // columns and 13 of 16 rows valid; 2 balanced chunks (24 / 17 rows) with d % 8 = 4; the ViT's
    // N = 65 in 3 chunks; N = 128, the key limit (4 keys per lane, 8 chunks); and just past its
    // limits, on the fallback: N = 129, and (70, 64) over the shared-memory budget.
    // AttentionFastPathTests checks which path each takes.
    public static readonly AttentionCase[] FastPathEdges =
        [new(2, 1, 3, 0f), new(3, 13, 6, 0.3f), new(1, 41, 12, 0f), new(1, 65, 9, 0.2f), new(1, 128, 8, 0.1f),
         new(1, 129, 5, 0.1f), new(1, 70, 64, 0f), new(1, 37, 40, 0f), new(1, 33, 16, 0.25f)];

    public static IEnumerable<AttentionCase> For(bool slow) => slow
        ? [new(1, 1, 1, 0f), new(2, 5, 3, 0f), new(1, 9, 4, 0.2f), new(2, 17, 5, 0.1f), new(1, 33, 3, 0f),
           new(1, 65, 64, 0f), new(1, 65, 64, 0.1f), new(2, 17, 32, 0f), new(2, 17, 32, 0.1f),
           .. FastPathEdges]
        : [new(1, 1, 1, 0f), new(2, 7, 3, 0f), new(3, 17, 8, 0.1f), new(2, 65, 16, 0f), new(1, 65, 33, 0.2f),
           new(4, 33, 7, 0.5f), new(2, 129, 9, 0f), new(12, 65, 16, 0.1f),
           new(1, 65, 64, 0f), new(2, 65, 64, 0.1f), new(2, 17, 32, 0f), new(2, 17, 32, 0.1f)];
}

/// <summary>
/// Fused attention against the unfused float64 reference, within the per-element bounds derived
/// in <see cref="AttentionBounds"/>.
/// </summary>
[Collection(BackendCollection.Name)]
public class AttentionMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, AttentionCase> Rows => BackendMatrix.Rows(AttentionCase.For);

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
        k.AttentionForward(q, kk, v, o, lse, c.BH, c.N, c.D, (float)c.Scale, c.DropoutP, seed);
        R.AttentionForward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, c.BH, c.N, c.D, (float)c.Scale, c.DropoutP, seed);
        var (bo, bl) = new AttentionBounds(q.Ref, kk.Ref, c.BH, c.N, c.D, c.Scale, c.DropoutP, seed).Forward(q.Ref, kk.Ref, v.Ref, lse.Ref);
        run.Check(o, i => bo[i]);
        run.Check(lse, r => bl[r]);
        run.CheckRest();
    }

    // The GPU backends run the short-sequence backward as one launch (AttentionKernels.Backward)
    // for d > 32 and as its two halves otherwise; the cases cover both (d = 33, 40, 64 and d <= 32).
    [Theory, MemberData(nameof(Rows))]
    public void AttentionBackward(string backend, AttentionCase c) => CheckBackward(fixture.Get(backend), c);

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

        var (bq, bk, bv) = new AttentionBounds(q.Ref, kk.Ref, c.BH, c.N, c.D, c.Scale, c.DropoutP, seed)
            .Backward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, dO.Ref);

        k.AttentionBackward(q, kk, v, o, lse, dO, dq, dk, dv, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        R.AttentionBackward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, dO.Ref, dq.Ref, dk.Ref, dv.Ref, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        run.Check(dq, i => AttentionBounds.Accumulated(bq[i], dq.Init[i], dq.Ref[i]));
        run.Check(dk, i => AttentionBounds.Accumulated(bk[i], dk.Init[i], dk.Ref[i]));
        run.Check(dv, i => AttentionBounds.Accumulated(bv[i], dv.Init[i], dv.Ref[i]));
        run.CheckRest();
    }
}
