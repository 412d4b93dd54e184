using ViTScratch.Kernels;
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
        ? [new(2, 3, 5, 4, 0f, 3, 1), new(1, 2, 9, 3, 0.2f, 0, 2), new(1, 1, 37, 120, 0.1f, 1, 0)]   // the last: past the fast path's shared budget, so the GPU fallback kernels
        : [new(2, 3, 5, 4, 0f, 3, 1), new(3, 4, 17, 32, 0.1f, 0, 0), new(2, 3, 65, 64, 0f, 0, 0),
           new(1, 2, 129, 9, 0.2f, 5, 3), new(2, 2, 33, 7, 0f, 2, 1)];
}

/// <summary>
/// Attention on a strided <see cref="AttentionLayout"/> (q, k, v read from to_qkv-shaped rows, o
/// written with heads merged) against the same backend's dense [BH, N, D] attention on the same
/// numbers gathered into dense arrays. Both run the same arithmetic in the same order, only the
/// addresses differ, so the results must agree bit for bit; the dense path itself is checked
/// against float64 in AttentionMatrixTests. Row padding starts random and must come back
/// unchanged, as must the guard cells around every buffer (OpRun), so a kernel that reads or
/// writes with the dense stride fails.
/// </summary>
[Collection(BackendCollection.Name)]
public class AttentionLayoutTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, AttentionLayoutCase> Rows => BackendMatrix.Rows(AttentionLayoutCase.For);

    // Index of element c of row i of pair bh in a layout-addressed buffer (in: q at column block 0,
    // k at 1, v at 2; out: o and dO).
    private static int In(AttentionLayoutCase c, int block, int bh, int i, int col) =>
        c.Layout.InBase(bh, c.D) + block * c.H * c.D + i * c.InRow + col;
    private static int Out(AttentionLayoutCase c, int bh, int i, int col) => c.Layout.OutBase(bh, c.D) + i * c.OutRow + col;

    private static float[] GatherIn(AttentionLayoutCase c, float[] packed, int block)
    {
        var dense = new float[c.BH * c.N * c.D];
        for (int bh = 0; bh < c.BH; bh++)
            for (int i = 0; i < c.N; i++)
                for (int col = 0; col < c.D; col++)
                    dense[(bh * c.N + i) * c.D + col] = packed[In(c, block, bh, i, col)];
        return dense;
    }

    private static float[] GatherOut(AttentionLayoutCase c, float[] packed)
    {
        var dense = new float[c.BH * c.N * c.D];
        for (int bh = 0; bh < c.BH; bh++)
            for (int i = 0; i < c.N; i++)
                for (int col = 0; col < c.D; col++)
                    dense[(bh * c.N + i) * c.D + col] = packed[Out(c, bh, i, col)];
        return dense;
    }

    [Theory, MemberData(nameof(Rows))]
    public void PackedMatchesDenseBitForBit(string backend, AttentionLayoutCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"attention layout {c}");
        uint seed = rng.NextUInt();
        float scale = 1f / MathF.Sqrt(c.D);
        int inLen = c.B * c.N * c.InRow, outLen = c.B * c.N * c.OutRow, dense = c.BH * c.N * c.D;
        var qkvInit = rng.Floats(inLen, -1.5, 1.5);
        var oInit = rng.Floats(outLen);        // valid cells must be overwritten, padding kept
        var dOInit = rng.Floats(outLen);
        var gradInit = rng.Floats(inLen);      // `+=` target, padding kept

        // Dense reference run on the same backend.
        using var denseRun = new OpRun(k);
        var q = denseRun.With("q", GatherIn(c, qkvInit, 0));
        var kk = denseRun.With("k", GatherIn(c, qkvInit, 1));
        var v = denseRun.With("v", GatherIn(c, qkvInit, 2));
        var o = denseRun.Poisoned("o", dense);
        var lse = denseRun.Poisoned("lse", c.BH * c.N);
        k.AttentionForward(q, kk, v, o, lse, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        var dO = denseRun.With("dO", GatherOut(c, dOInit));
        var dq = denseRun.With("dq", GatherIn(c, gradInit, 0));
        var dk = denseRun.With("dk", GatherIn(c, gradInit, 1));
        var dv = denseRun.With("dv", GatherIn(c, gradInit, 2));
        k.AttentionBackward(q, kk, v, o, lse, dO, dq, dk, dv, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        var (oD, lseD, dqD, dkD, dvD) = (denseRun.Read(o), denseRun.Read(lse), denseRun.Read(dq), denseRun.Read(dk), denseRun.Read(dv));

        // The packed run: q, k, v are views of one buffer at column blocks 0, H·D and 2·H·D.
        using var run = new OpRun(k);
        var qkv = run.With("qkv", qkvInit);
        var oP = run.With("o", oInit);
        var lseP = run.Poisoned("lse", c.BH * c.N);
        var dOP = run.With("dO", dOInit);
        var grad = run.With("dqkv", gradInit);
        var (qv, kv, vv) = Thirds(k, qkv, c);
        var (gq, gk, gv) = Thirds(k, grad, c);
        k.AttentionForward(qv, kv, vv, oP, lseP, c.BH, c.N, c.D, scale, c.DropoutP, seed, c.Layout);
        k.AttentionBackward(qv, kv, vv, oP, lseP, dOP, gq, gk, gv, c.BH, c.N, c.D, scale, c.DropoutP, seed, c.Layout);

        for (int bh = 0; bh < c.BH; bh++)
            for (int i = 0; i < c.N; i++)
            {
                lseP.Ref[bh * c.N + i] = lseD[bh * c.N + i];
                for (int col = 0; col < c.D; col++)
                {
                    int at = (bh * c.N + i) * c.D + col;
                    oP.Ref[Out(c, bh, i, col)] = oD[at];
                    grad.Ref[In(c, 0, bh, i, col)] = dqD[at];
                    grad.Ref[In(c, 1, bh, i, col)] = dkD[at];
                    grad.Ref[In(c, 2, bh, i, col)] = dvD[at];
                }
            }
        run.CheckExact(oP);
        run.CheckExact(lseP);
        run.CheckExact(grad);
        run.CheckRest();   // qkv and dO unchanged, nothing written past any buffer
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
        Assert.Contains(slow, c => ViTScratch.Kernels.Gpu.AttentionSmallKernels.Fits(c.N, c.D));
        Assert.Contains(slow, c => !ViTScratch.Kernels.Gpu.AttentionSmallKernels.Fits(c.N, c.D));
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
