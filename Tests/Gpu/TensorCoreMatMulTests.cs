using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The tensor-core matmul (MatMulTensorCoreKernels.cs) under MathPrecision.Tf32 and Bf16, on the
/// GPU backends: the simulator (ilgpu-cpu, where Mma.cs emulates each mma from the PTX fragment
/// layout) and cuda when present. Every case is checked twice, element by element:
/// - against the float64 product of the unrounded inputs, within the format's derived bound
///   (LowPrecision: (2u + u^2) |A||B| + 2(K + 3) U (|A||B| + |c0| + |bias|)): the contract;
/// - against the float64 product of the inputs rounded to the format on the host by an
///   independent definition (LowPrecision.Round), within the float32 term alone: a fragment or
///   tile index error cannot hide inside the format's rounding there, at any K.
/// Outputs start poisoned (`=`) or random (`+=`), buffers sit between guard cells (OpRun).
/// </summary>
[Collection(BackendCollection.Name)]
public sealed class TensorCoreMatMulTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public sealed record Case(MathPrecision Precision, int Batch, int M, int N, int K, bool TransA, bool TransB, int Sharing, bool Bias, float Alpha, bool Accumulate)
    {
        public MatMulShape Shape => new(Batch, M, N, K, TransA, TransB,
            Sharing == 1 ? 0 : M * K + 3, Sharing == 2 ? 0 : K * N + 1, M * N + 5);

        public int LengthA => (int)(Shape.StrideA * (Batch - 1)) + M * K;
        public int LengthB => (int)(Shape.StrideB * (Batch - 1)) + K * N;
        public int LengthC => (int)(Shape.StrideC * (Batch - 1)) + M * N;

        public override string ToString() =>
            $"{Precision} b{Batch} {M}x{N}x{K} {(TransA ? "T" : "N")}{(TransB ? "T" : "N")} share{Sharing}{(Bias ? " bias" : "")} a{Alpha}{(Accumulate ? " +=" : "")}";
    }

    // The simulator pays a warp-wide barrier per emulated shuffle (12 per k step of 8 or 16) and
    // a few seconds per 64 x 64 tile and K step of 32 on a loaded 2-core host, so the cases are
    // small: every edge the kernel has (below one tile, across tile edges, K not a multiple of 32,
    // 16 or 8, every transpose combination, split-K, batch strides), the ViT's attention products
    // at their real sizes, and its linear layers' shapes in the same orientations at small width.
    public static IEnumerable<Case> Cases()
    {
        foreach (var p in new[] { MathPrecision.Tf32, MathPrecision.Bf16 })
        {
            int v = 0;
            foreach (var (m, n, k) in new[] { (5, 3, 7), (33, 70, 9) })
                foreach (bool ta in new[] { false, true })
                    foreach (bool tb in new[] { false, true })
                    {
                        v++;
                        yield return new(p, 1, m, n, k, ta, tb, 0, Bias: v % 2 == 1, v % 3 == 0 ? -0.5f : 1f, Accumulate: v % 4 >= 2);
                    }
            yield return new(p, 1, 1, 1, 1, false, false, 0, Bias: true, 1f, Accumulate: true);
            yield return new(p, 1, 70, 67, 45, false, true, 0, Bias: true, 1f, Accumulate: false);
            // Attention products: scores Q Kᵀ and P V per head (batch = heads), vit-micro on
            // Fashion-MNIST (17 tokens, head 32) and vit-tiny on CIFAR (65 tokens, head 64).
            yield return new(p, 2, 17, 17, 32, false, true, 0, Bias: false, 0.17677669f, Accumulate: false);
            yield return new(p, 2, 17, 32, 17, false, false, 0, Bias: false, 1f, Accumulate: false);
            if (p == MathPrecision.Bf16)   // the slowest case on the simulator: one precision is enough
                yield return new(p, 1, 65, 65, 64, false, true, 0, Bias: false, 0.125f, Accumulate: false);
            // A linear layer's forward y = x Wᵀ + b, input gradient dY W and weight gradient dYᵀ X
            // (K = tokens, accumulated), 17 tokens and widths 64 -> 96.
            yield return new(p, 1, 17, 96, 64, false, true, 0, Bias: true, 1f, Accumulate: false);
            yield return new(p, 1, 17, 64, 96, false, false, 0, Bias: false, 1f, Accumulate: false);
            yield return new(p, 1, 96, 64, 17, true, false, 0, Bias: false, 1f, Accumulate: true);
            // Few tiles over a long K: split into K slices on the GPU backends (ragged last slice).
            yield return new(p, 1, 20, 24, 130, false, true, 0, Bias: true, 1f, Accumulate: true);
            // Batched with a shared operand (stride 0) and padded batch strides.
            yield return new(p, 3, 17, 9, 40, false, true, 1, Bias: false, 0.25f, Accumulate: true);
            yield return new(p, 2, 9, 20, 17, true, false, 2, Bias: true, 1f, Accumulate: false);
        }
    }

    public static TheoryData<string, Case> Rows
    {
        get
        {
            var data = new TheoryData<string, Case>();
            foreach (string backend in BackendMatrix.RowBackends.Where(n => n is "ilgpu-cpu" or "cuda"))
                foreach (var c in Cases())
                    data.Add(backend, c);
            return data;
        }
    }

    [Theory, MemberData(nameof(Rows))]
    public void MatMul(string backend, Case c)
    {
        var k = fixture.Get(backend);
        k.Precision = c.Precision;
        try { Check(k, c); }
        finally { k.Precision = MathPrecision.Fp32; }
    }

    [Fact]
    public void Precision_reaches_the_GPU_backend_and_not_the_CPU_one()
    {
        using var gpu = BackendFactory.Create("ilgpu-cpu");
        gpu.Precision = MathPrecision.Bf16;
        Assert.Equal(MathPrecision.Bf16, gpu.Precision);
        using var cpu = BackendFactory.Create("cpu");
        cpu.Precision = MathPrecision.Bf16;
        Assert.Equal(MathPrecision.Fp32, cpu.Precision);
    }

    private static void Check(IKernels k, Case c)
    {
        var rng = TestRandom.For($"tc-matmul {c}");
        var s = c.Shape;
        using var run = new OpRun(k);
        var a = run.With("a", rng.Floats(c.LengthA));
        var b = run.With("b", rng.Floats(c.LengthB));
        var bias = c.Bias ? run.With("bias", rng.Floats(c.N)) : null;
        var cc = c.Accumulate ? run.With("c", rng.Floats(c.LengthC)) : run.Poisoned("c", c.LengthC);

        // |alpha| (|A||B|), and that plus |c0| + |bias|, per output.
        var magAB = new double[c.LengthC];
        R.MatMul(a.Init.Abs(), b.Init.Abs(), magAB, s, Math.Abs(c.Alpha), accumulate: false);
        var magAll = c.Accumulate ? cc.Init.Abs() : new double[c.LengthC];
        for (int i = 0; i < magAll.Length; i++) magAll[i] += magAB[i];

        // The same product from the inputs rounded to the format (independent rounding definition).
        var rounded = c.Accumulate ? cc.Init.ToDouble() : new double[c.LengthC];
        R.MatMul(Array.ConvertAll(a.Init, x => (double)LowPrecision.Round(c.Precision, x)),
            Array.ConvertAll(b.Init, x => (double)LowPrecision.Round(c.Precision, x)), rounded, s, c.Alpha, c.Accumulate);

        k.MatMul(a, b, cc, s, c.Alpha, c.Accumulate, bias?.Dev);
        R.MatMul(a.Ref, b.Ref, cc.Ref, s, c.Alpha, c.Accumulate);
        if (bias is not null)
            for (int bt = 0; bt < c.Batch; bt++)
                for (int r = 0; r < c.M; r++)
                    for (int j = 0; j < c.N; j++)
                    {
                        long at = bt * s.StrideC + (long)r * c.N + j;   // the gaps between padded batches get no bias
                        cc.Ref[at] += bias.Ref[j];
                        rounded[at] += bias.Ref[j];
                        magAll[at] += Math.Abs(bias.Ref[j]);
                    }
        // Gaps between padded batches: untouched (NaN-poisoned or the random start) in both references.
        for (int i = 0; i < rounded.Length; i++)
            if (IsGap(c, i)) rounded[i] = cc.Ref[i];

        double acc = 2.0 * (c.K + 3) * Tol.U;
        var actual = run.Read(cc);
        Tol.Check($"{c} vs the rounded-input product", rounded, actual, i => acc * magAll[i]);
        run.Check(cc, i => LowPrecision.Bound(c.Precision, c.K, magAB[i], magAll[i]));
        run.CheckRest();
    }

    private static bool IsGap(Case c, int i)
    {
        long stride = c.Shape.StrideC;
        return i % stride >= (long)c.M * c.N;
    }
}
