using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Tests.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;

namespace ViTScratch.Tests.Gpu;

public sealed record TensorCoreAttentionCase(int BH, int N, int D, float DropoutP, MathPrecision Precision)
{
    public double Scale => (float)(1.0 / Math.Sqrt(D));
    public int Size => BH * N * D;

    // Simulator: the model's head shapes (N, d) = (17, 32) and (65, 64) (two row blocks of 64, the
    // second with one row; five key steps of 16, the last with one key), a ragged N = 41 (three
    // warps idle in the block, a last step of 9 keys), each format with and without dropout, and
    // N = 129 (three blocks, nine steps). The GPU adds the long end: N = 197 and 257.
    public static IEnumerable<TensorCoreAttentionCase> For(bool slow) => slow
        ? [new(2, 17, 32, 0f, MathPrecision.Tf32), new(2, 17, 32, 0.1f, MathPrecision.Bf16),
           new(1, 65, 64, 0f, MathPrecision.Bf16), new(1, 65, 64, 0.1f, MathPrecision.Tf32),
           new(1, 41, 64, 0.2f, MathPrecision.Bf16), new(1, 129, 32, 0.1f, MathPrecision.Bf16)]
        : [new(6, 17, 32, 0f, MathPrecision.Tf32), new(6, 17, 32, 0.1f, MathPrecision.Bf16),
           new(12, 65, 64, 0f, MathPrecision.Bf16), new(12, 65, 64, 0.1f, MathPrecision.Tf32),
           new(3, 41, 64, 0.2f, MathPrecision.Bf16), new(4, 129, 32, 0f, MathPrecision.Tf32),
           new(2, 197, 64, 0.1f, MathPrecision.Tf32), new(2, 257, 64, 0f, MathPrecision.Bf16), new(2, 257, 32, 0.1f, MathPrecision.Bf16)];
}

/// <summary>
/// The tensor-core attention (AttentionTensorCoreKernels.cs) against the float64 reference within
/// the bounds <see cref="AttentionBounds"/> derives for its format, on the GPU backends only (the
/// CPU backend stays float32 whatever the precision): on ILGPU's CPU accelerator the mma runs as its
/// shuffle emulation of the PTX fragment layout, on CUDA as the instruction. Plus an exact check that
/// Tf32/Bf16 really take the tensor-core path and round as their format says.
/// </summary>
[Collection(BackendCollection.Name)]
public class AttentionTensorCoreTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    private static IEnumerable<string> GpuBackends => BackendMatrix.Available.Where(n => n != "cpu");

    public static TheoryData<string, TensorCoreAttentionCase> Rows
    {
        get
        {
            var data = new TheoryData<string, TensorCoreAttentionCase>();
            foreach (var name in GpuBackends)
                foreach (var c in TensorCoreAttentionCase.For(BackendMatrix.IsSlow(name)))
                    data.Add(name, c);
            return data;
        }
    }

    private IKernels Backend(string name, MathPrecision p)
    {
        var k = fixture.Get(name);
        k.Precision = p;
        return k;
    }

    [Theory, MemberData(nameof(Rows))]
    public void Forward(string backend, TensorCoreAttentionCase c)
    {
        Assert.True(AttentionTensorCoreKernels.Supports(c.N, c.D));
        var k = Backend(backend, c.Precision);
        var rng = TestRandom.For($"tc attention {c}");
        uint seed = rng.NextUInt();
        using var run = new OpRun(k);
        var q = run.With("q", rng.Floats(c.Size, -1.5, 1.5));
        var kk = run.With("k", rng.Floats(c.Size, -1.5, 1.5));
        var v = run.With("v", rng.Floats(c.Size));
        var o = run.Poisoned("o", c.Size);
        var lse = run.Poisoned("lse", c.BH * c.N);
        k.AttentionForward(q, kk, v, o, lse, c.BH, c.N, c.D, (float)c.Scale, c.DropoutP, seed);
        R.AttentionForward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, c.BH, c.N, c.D, (float)c.Scale, c.DropoutP, seed);
        var (bo, bl) = new AttentionBounds(q.Ref, kk.Ref, c.BH, c.N, c.D, c.Scale, c.DropoutP, seed, c.Precision)
            .Forward(q.Ref, kk.Ref, v.Ref, lse.Ref);
        run.Check(o, i => bo[i]);
        run.Check(lse, r => bl[r]);
        run.CheckRest();
    }

    [Theory, MemberData(nameof(Rows))]
    public void Backward(string backend, TensorCoreAttentionCase c)
    {
        var k = Backend(backend, c.Precision);
        var rng = TestRandom.For($"tc attention' {c}");
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
        var (bq, bk, bv) = new AttentionBounds(q.Ref, kk.Ref, c.BH, c.N, c.D, c.Scale, c.DropoutP, seed, c.Precision)
            .Backward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, dO.Ref);

        k.AttentionBackward(q, kk, v, o, lse, dO, dq, dk, dv, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        R.AttentionBackward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, dO.Ref, dq.Ref, dk.Ref, dv.Ref, c.BH, c.N, c.D, scale, c.DropoutP, seed);
        run.Check(dq, i => AttentionBounds.Accumulated(bq[i], dq.Init[i], dq.Ref[i]));
        run.Check(dk, i => AttentionBounds.Accumulated(bk[i], dk.Init[i], dk.Ref[i]));
        run.Check(dv, i => AttentionBounds.Accumulated(bv[i], dv.Init[i], dv.Ref[i]));
        run.CheckRest();
    }

    public static TheoryData<string, MathPrecision> LayoutRows
    {
        get
        {
            var data = new TheoryData<string, MathPrecision>();
            foreach (var name in GpuBackends)
                foreach (var p in new[] { MathPrecision.Tf32, MathPrecision.Bf16 })
                    data.Add(name, p);
            return data;
        }
    }

    // q, k, v read out of to_qkv-shaped rows and o written with heads merged (AttentionLayoutTests'
    // float64 oracle over the dense definition), with row padding that must come back untouched.
    [Theory, MemberData(nameof(LayoutRows))]
    public void PackedLayout(string backend, MathPrecision p)
    {
        AttentionLayoutTests.CheckPacked(Backend(backend, p), p == MathPrecision.Tf32
            ? new AttentionLayoutCase(2, 2, 17, 32, 0.1f, 3, 1)
            : new AttentionLayoutCase(1, 2, 33, 64, 0f, 0, 2), p);
    }

    // With one key P = 1, so o = 1 · v is exact in any arithmetic but for the rounding of v to the
    // mma's input format: o must equal v rounded to nearest-even TF32 or BF16 bit for bit (and v
    // itself under Fp32). The expected rounding is computed here in double, independently of the
    // kernels' bit arithmetic; v's low mantissa bits are random, so a path that skips the rounding,
    // rounds to the other format or truncates fails, and so does a dispatch that ignores Precision.
    [Theory]
    [InlineData(MathPrecision.Fp32, 32)]
    [InlineData(MathPrecision.Tf32, 32)]
    [InlineData(MathPrecision.Tf32, 64)]
    [InlineData(MathPrecision.Bf16, 32)]
    [InlineData(MathPrecision.Bf16, 64)]
    public void One_key_gives_v_rounded_to_the_format(MathPrecision p, int d)
    {
        foreach (var backend in GpuBackends)
        {
            var k = Backend(backend, p);
            var rng = TestRandom.For($"tc one key {p} {d}");
            int bh = 3;
            var vs = rng.Floats(bh * d, -2, 2);
            using var run = new OpRun(k);
            var q = run.With("q", rng.Floats(bh * d, -1.5, 1.5));
            var kk = run.With("k", rng.Floats(bh * d, -1.5, 1.5));
            var v = run.With("v", vs);
            var o = run.Poisoned("o", bh * d);
            var lse = run.Poisoned("lse", bh);
            float scale = 1f / MathF.Sqrt(d);
            k.AttentionForward(q, kk, v, o, lse, bh, 1, d, scale, 0f, 0);
            R.AttentionForward(q.Ref, kk.Ref, v.Ref, o.Ref, lse.Ref, bh, 1, d, scale, 0f, 0);
            var (_, bl) = new AttentionBounds(q.Ref, kk.Ref, bh, 1, d, scale, 0f, 0, p).Forward(q.Ref, kk.Ref, v.Ref, lse.Ref);
            int bits = p switch { MathPrecision.Tf32 => 10, MathPrecision.Bf16 => 7, _ => 23 };
            // TF32 as cvt.rna (ties away, Mma.RoundTf32), BF16 as cvt.rn (ties to even).
            var ties = p == MathPrecision.Tf32 ? MidpointRounding.AwayFromZero : MidpointRounding.ToEven;
            for (int i = 0; i < vs.Length; i++) o.Ref[i] = RoundToMantissa(vs[i], bits, ties);
            run.CheckExact(o);
            Assert.Contains(vs, x => RoundToMantissa(x, bits, ties) != x || p == MathPrecision.Fp32);   // the check can tell
            run.Check(lse, r => bl[r]);   // lse = the one score
        }
    }

    // x rounded to nearest with `bits` stored mantissa bits (normal numbers), ties as given.
    private static double RoundToMantissa(double x, int bits, MidpointRounding ties)
    {
        if (x == 0) return 0;
        double ulp = Math.ScaleB(1.0, Math.ILogB(x) - bits);
        return Math.Round(x / ulp, ties) * ulp;
    }

    [Fact]
    public void Supported_shapes_and_shared_memory()
    {
        foreach (int n in new[] { 1, 17, 65, 197, 257, 1000 })
        {
            Assert.True(AttentionTensorCoreKernels.Supports(n, 32));
            Assert.True(AttentionTensorCoreKernels.Supports(n, 64));
        }
        foreach (int d in new[] { 8, 16, 33, 48, 96, 128 }) Assert.False(AttentionTensorCoreKernels.Supports(65, d));
        Assert.False(AttentionTensorCoreKernels.Supports(0, 32));
        // The header's table: 26.1 KB forward, 43.6 KB backward; within the 48 KB of static shared memory.
        Assert.Equal((64 + 32) * 68 * 4, AttentionTensorCoreKernels.ForwardSharedBytes);
        Assert.Equal((160 * 68 + 32) * 4, AttentionTensorCoreKernels.BackwardSharedBytes);
        Assert.True(AttentionTensorCoreKernels.BackwardSharedBytes <= 48 * 1024);
        Assert.Equal(2, AttentionTensorCoreKernels.Blocks(65));
        Assert.Equal(5, AttentionTensorCoreKernels.Blocks(257));
    }

    [Fact]
    public void Cases_cover_both_formats_both_head_widths_dropout_and_ragged_n()
    {
        var slow = TensorCoreAttentionCase.For(slow: true).ToList();
        foreach (var p in new[] { MathPrecision.Tf32, MathPrecision.Bf16 })
            foreach (int d in new[] { 32, 64 })
                Assert.Contains(slow, c => c.Precision == p && c.D == d);
        Assert.Contains(slow, c => c.N == 17);
        Assert.Contains(slow, c => c.N == 65);
        Assert.Contains(slow, c => c.N % AttentionTensorCoreKernels.Step != 0 && c.N % AttentionTensorCoreKernels.Step != 1);
        Assert.Contains(slow, c => AttentionTensorCoreKernels.Blocks(c.N) > 2);
        Assert.Contains(slow, c => c.DropoutP > 0);
        Assert.Contains(slow, c => c.DropoutP == 0);
    }
}
