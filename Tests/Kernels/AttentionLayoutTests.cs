using ViTScratch.Kernels;
using ViTScratch.Tests.Reference;
using ViTScratch.Tests.TestSupport;
using Xunit;

namespace ViTScratch.Tests.Kernels;

/// <summary>B images, H heads, N tokens, head width D; rows padded by PadIn / PadOut extra floats.</summary>
public sealed record AttentionLayoutCase(int B, int H, int N, int D, float DropoutP, int PadIn, int PadOut)
{
    public int InRow => 3 * H * D + PadIn;    // a to_qkv row, plus padding nobody may touch
    public int OutRow => H * D + PadOut;      // a merged-heads row, plus padding
    public AttentionLayout Layout => new(H, N * InRow, InRow, N * OutRow, OutRow);
    public int BH => B * H;

    public static IEnumerable<AttentionLayoutCase> For(bool slow) => slow
        ? [new(2, 3, 5, 4, 0f, 3, 1), new(1, 2, 9, 3, 0.2f, 0, 2), new(1, 1, 37, 120, 0.1f, 1, 0),
           new(1, 1, 65, 64, 0.1f, 0, 0), new(1, 2, 17, 32, 0f, 0, 0)]   // the model's head shapes   // the last: past the fast path's shared budget, so the GPU fallback kernels
        : [new(2, 3, 5, 4, 0f, 3, 1), new(3, 4, 17, 32, 0.1f, 0, 0), new(2, 3, 65, 64, 0f, 0, 0),
           new(1, 2, 129, 9, 0.2f, 5, 3), new(2, 2, 33, 7, 0f, 2, 1)];
}

/// <summary>
/// Attention on a strided <see cref="AttentionLayout"/> (q, k, v read from to_qkv-shaped rows, o
/// written with heads merged) against the float64 reference computed from the dense definition:
/// the test gathers q, k, v (and dO) out of the packed rows by its own index arithmetic, runs the
/// dense reference, and scatters the expected o, lse and gradients back to packed positions,
/// within the bounds of <see cref="AttentionBounds"/>. Row padding starts random and must come back
/// unchanged (bound 0), as must the guard cells around every buffer (OpRun), so a kernel that
/// reads or writes with the dense stride, or swaps heads, tokens or the q/k/v blocks, fails.
/// </summary>
[Collection(BackendCollection.Name)]
public class AttentionLayoutTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, AttentionLayoutCase> Rows => BackendMatrix.Rows(AttentionLayoutCase.For);

    // Index of element c of row i of pair bh in a layout-addressed buffer (in: q at column block 0,
    // k at 1, v at 2; out: o and dO). Pair bh = b H + head: image b's row i holds head `head` at
    // columns head D .. head D + D - 1 of each block.
    private static int In(AttentionLayoutCase c, int block, int bh, int i, int col) =>
        (bh / c.H * c.N + i) * c.InRow + block * c.H * c.D + bh % c.H * c.D + col;
    private static int Out(AttentionLayoutCase c, int bh, int i, int col) => (bh / c.H * c.N + i) * c.OutRow + bh % c.H * c.D + col;

    private static double[] GatherIn(AttentionLayoutCase c, float[] packed, int block)
    {
        var dense = new double[c.BH * c.N * c.D];
        for (int bh = 0; bh < c.BH; bh++)
            for (int i = 0; i < c.N; i++)
                for (int col = 0; col < c.D; col++)
                    dense[(bh * c.N + i) * c.D + col] = packed[In(c, block, bh, i, col)];
        return dense;
    }

    private static double[] GatherOut(AttentionLayoutCase c, float[] packed)
    {
        var dense = new double[c.BH * c.N * c.D];
        for (int bh = 0; bh < c.BH; bh++)
            for (int i = 0; i < c.N; i++)
                for (int col = 0; col < c.D; col++)
                    dense[(bh * c.N + i) * c.D + col] = packed[Out(c, bh, i, col)];
        return dense;
    }

    [Theory, MemberData(nameof(Rows))]
    public void PackedMatchesFloat64Reference(string backend, AttentionLayoutCase c) => CheckPacked(fixture.Get(backend), c);

    /// <summary>The check above on backend k, within the bounds of its arithmetic (AttentionTensorCoreTests passes Tf32/Bf16).</summary>
    internal static void CheckPacked(IKernels k, AttentionLayoutCase c, MathPrecision precision = MathPrecision.Fp32)
    {
        var rng = TestRandom.For($"attention layout {c}");
        uint seed = rng.NextUInt();
        float scale = 1f / MathF.Sqrt(c.D);
        int inLen = c.B * c.N * c.InRow, outLen = c.B * c.N * c.OutRow, dense = c.BH * c.N * c.D;
        var qkvInit = rng.Floats(inLen, -1.5, 1.5);
        var oInit = rng.Floats(outLen);        // valid cells must be overwritten, padding kept
        var dOInit = rng.Floats(outLen);
        var gradInit = rng.Floats(inLen);      // `+=` target, padding kept

        // The dense definition in float64, and its error bounds.
        var (q, kk, v, dO) = (GatherIn(c, qkvInit, 0), GatherIn(c, qkvInit, 1), GatherIn(c, qkvInit, 2), GatherOut(c, dOInit));
        var o = new double[dense]; var lse = new double[c.BH * c.N];
        ReferenceKernels.AttentionForward(q, kk, v, o, lse, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        var (dq, dk, dv) = (new double[dense], new double[dense], new double[dense]);
        ReferenceKernels.AttentionBackward(q, kk, v, o, lse, dO, dq, dk, dv, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        var bounds = new AttentionBounds(q, kk, c.BH, c.N, c.D, scale, c.DropoutP, seed, precision);
        var (bo, bl) = bounds.Forward(q, kk, v, lse);
        // The backward runs from the reference o and lse rounded to float, as a backend saves them.
        var (oF, lseF) = (o.ToFloat(), lse.ToFloat());
        var (bq, bk, bv) = bounds.Backward(q, kk, v, oF.ToDouble(), lseF.ToDouble(), dO);

        // Forward: q, k, v are views of one buffer at column blocks 0, H·D and 2·H·D.
        using (var run = new OpRun(k))
        {
            var qkv = run.With("qkv", qkvInit);
            var oP = run.With("o", oInit);
            var lseP = run.Poisoned("lse", c.BH * c.N);
            var (qv, kv, vv) = Thirds(k, qkv, c);
            k.AttentionForward(qv, kv, vv, oP, lseP, c.BH, c.N, c.D, scale, c.DropoutP, seed, c.Layout);
            var oBound = new double[outLen];   // 0 on padding: it must come back bit for bit
            for (int bh = 0; bh < c.BH; bh++)
                for (int i = 0; i < c.N; i++)
                {
                    lseP.Ref[bh * c.N + i] = lse[bh * c.N + i];
                    for (int col = 0; col < c.D; col++)
                    {
                        int at = (bh * c.N + i) * c.D + col, to = Out(c, bh, i, col);
                        oP.Ref[to] = o[at];
                        oBound[to] = bo[at];
                    }
                }
            run.Check(oP, i => oBound[i]);
            run.Check(lseP, r => bl[r]);
            run.CheckRest();   // qkv unchanged, nothing written past any buffer
        }

        // Backward: into one packed gradient buffer, from the packed o and lse the forward would save.
        using (var run = new OpRun(k))
        {
            var qkv = run.With("qkv", qkvInit);
            var oIn = (float[])oInit.Clone();
            for (int bh = 0; bh < c.BH; bh++)
                for (int i = 0; i < c.N; i++)
                    for (int col = 0; col < c.D; col++) oIn[Out(c, bh, i, col)] = oF[(bh * c.N + i) * c.D + col];
            var oP = run.With("o", oIn);
            var lseP = run.With("lse", lseF);
            var dOP = run.With("dO", dOInit);
            var grad = run.With("dqkv", gradInit);
            var (qv, kv, vv) = Thirds(k, qkv, c);
            var (gq, gk, gv) = Thirds(k, grad, c);
            k.AttentionBackward(qv, kv, vv, oP, lseP, dOP, gq, gk, gv, c.BH, c.N, c.D, scale, c.DropoutP, seed, c.Layout);
            var gBound = new double[inLen];
            for (int bh = 0; bh < c.BH; bh++)
                for (int i = 0; i < c.N; i++)
                    for (int col = 0; col < c.D; col++)
                    {
                        int at = (bh * c.N + i) * c.D + col;
                        foreach (var (block, added, bound) in new[] { (0, dq, bq), (1, dk, bk), (2, dv, bv) })
                        {
                            int to = In(c, block, bh, i, col);
                            grad.Ref[to] = gradInit[to] + added[at];
                            gBound[to] = AttentionBounds.Accumulated(bound[at], gradInit[to], grad.Ref[to]);
                        }
                    }
            run.Check(grad, i => gBound[i]);
            run.CheckRest();   // qkv, o, lse and dO unchanged
        }
    }

    [Fact]
    public void TheTestsIndexArithmeticIsTheLayouts()
    {
        // In/Out above are written from the packed definition, not from AttentionLayout; the
        // layout's own base offsets must agree with them.
        var c = new AttentionLayoutCase(2, 3, 5, 4, 0f, 3, 1);
        for (int bh = 0; bh < c.BH; bh++)
        {
            Assert.Equal(In(c, 0, bh, 0, 0), c.Layout.InBase(bh, c.D));
            Assert.Equal(Out(c, bh, 0, 0), c.Layout.OutBase(bh, c.D));
        }
    }

    private static (DeviceBuffer, DeviceBuffer, DeviceBuffer) Thirds(IKernels k, OpRun.Buf b, AttentionLayoutCase c)
    {
        int inner = c.H * c.D;
        return (k.Slice(b, 0, b.Length), k.Slice(b, inner, b.Length - inner), k.Slice(b, 2 * inner, b.Length - 2 * inner));
    }

    [Fact]
    public void CasesCoverBothGpuPaths()
    {
        var slow = AttentionLayoutCase.For(slow: true).ToList();
        Assert.Contains(slow, c => ViTScratch.Kernels.Gpu.AttentionKernels.Fits(c.N, c.D));
        Assert.Contains(slow, c => !ViTScratch.Kernels.Gpu.AttentionKernels.Fits(c.N, c.D));
    }

    [Fact]
    public void CpuRejectsALayoutLargerThanItsBuffers()
    {
        // The CPU kernels address rows through raw pointers: a layout that overruns a buffer
        // must throw before any row is touched, not read past the array.
        using var k = new ViTScratch.Kernels.Cpu.CpuKernels();
        var layout = AttentionLayout.Packed(heads: 2, n: 5, d: 4);
        // q's view of a [2, 5, 3·2·4] buffer needs all of it but v's and k's last columns: 240 - 16.
        using var qkv = k.Allocate(2 * 5 * 24 - 2 * 8 - 1);
        using var o = k.Allocate(2 * 5 * 8);
        using var lse = k.Allocate(4 * 5);
        var e = Assert.Throws<ArgumentException>(() => k.AttentionForward(qkv, qkv, qkv, o, lse, 4, 5, 4, 0.5f, 0f, 0, layout));
        Assert.Contains("needs 224 floats", e.Message);
    }

    [Fact]
    public void PackedLayoutExtentIsTheBuffer()
    {
        // The packed layout's last row ends exactly where a [B, N, 3·H·D] buffer ends, so the
        // three views Ops.AttentionPacked makes (each running to the buffer's end) cover it.
        var l = AttentionLayout.Packed(heads: 3, n: 17, d: 8);
        var (inExtent, outExtent) = l.Extent(bh: 2 * 3, n: 17, d: 8);
        Assert.Equal(2 * 17 * 3 * 3 * 8 - 2 * 3 * 8, inExtent);   // + 2·H·D: v's column block
        Assert.Equal(2 * 17 * 3 * 8, outExtent);
    }
}
