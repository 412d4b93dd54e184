using ViTScratch.Kernels.Gpu;
using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

/// <summary>
/// A matmul case. Sharing: 0 = every batch has its own A and B, 1 = A shared (stride 0, a weight
/// applied to every batch), 2 = B shared. Padded: batch strides larger than the matrices, so
/// there are gaps a kernel must neither read as data nor write.
/// </summary>
public sealed record MatMulCase(int Batch, int M, int N, int K, bool TransA, bool TransB, int Sharing, bool Padded, float Alpha, bool Accumulate)
{
    public MatMulShape Shape => new(Batch, M, N, K, TransA, TransB,
        Sharing == 1 ? 0 : M * K + (Padded ? 3 : 0),
        Sharing == 2 ? 0 : K * N + (Padded ? 1 : 0),
        M * N + (Padded ? 5 : 0));

    public int LengthA => (int)(Shape.StrideA * (Batch - 1)) + M * K;
    public int LengthB => (int)(Shape.StrideB * (Batch - 1)) + K * N;
    public int LengthC => (int)(Shape.StrideC * (Batch - 1)) + M * N;

    public static IEnumerable<MatMulCase> For(bool slow)
    {
        var sizes = slow
            ? new[] { (1, 1, 1), (5, 3, 7), (9, 17, 4), (33, 2, 5), (9, 7, 100), (2, 33, 70), (70, 67, 9) }
            : new[] { (1, 1, 1), (7, 5, 3), (65, 33, 17), (1, 129, 65), (129, 1, 7), (17, 65, 129), (64, 64, 64), (100, 96, 130), (33, 70, 1000) };
        // The last rows are few tiles over a long K: the GPU backend splits K into slices there
        // (split-K, GpuKernels.MatMul.cs), into a ragged last slice. The GPU kernel's prologue, slab
        // swap and last step (no next slab) show up in the ragged, split-K and tiny-K cases.
        int v = 0;
        foreach (var (m, n, k) in sizes)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                {
                    v++;
                    yield return new(1, m, n, k, ta, tb, 0, false, v % 3 == 0 ? -0.5f : 1f, Accumulate: v % 2 == 0);
                }
        var batched = slow ? new[] { (2, 5, 3, 7) } : new[] { (3, 7, 5, 3), (4, 65, 17, 33), (2, 17, 129, 9) };
        foreach (var (b, m, n, k) in batched)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    for (int sharing = 0; sharing < 3; sharing++)
                    {
                        v++;
                        yield return new(b, m, n, k, ta, tb, sharing, Padded: v % 2 == 0, v % 3 == 0 ? 0.25f : 1f, Accumulate: sharing != 1);
                    }
    }
}

[Collection(BackendCollection.Name)]
public class MatMulMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, MatMulCase> Rows => BackendMatrix.Rows(MatMulCase.For);

    // Bound: a dot product of K terms summed in any order (blocked, tree, FMA) is within
    // γ_K Σ|a||b| ≤ K U Σ|a||b| of the exact value; scaling by alpha and adding to c0 adds two more
    // roundings: |error| ≤ (K + 2) U (|alpha| (|A||B|)_ij + |c0_ij|). (|A||B|) is the reference
    // matmul of the absolute values. A wrong index or a dropped term misses by about
    // Σ|a||b| / K, far above this bound; a TF32 tensor-core product (2^-11) would fail it too,
    // on purpose: the contract is float32.
    [Theory, MemberData(nameof(Rows))]
    public void MatMul(string backend, MatMulCase c) => Check(fixture.Get(backend), c);

    // The Linear layer's fused bias: C (=|+=) alpha op(A) op(B) + bias[j] on every row of every
    // batch, on every backend.
    [Theory, MemberData(nameof(Rows))]
    public void MatMulWithBias(string backend, MatMulCase c) => CheckWithBias(fixture.Get(backend), c);

    private static void CheckWithBias(IKernels k, MatMulCase c)
    {
        var rng = TestRandom.For($"matmul+bias {c}");
        var s = c.Shape;
        using var run = new OpRun(k);
        var a = run.With("a", rng.Floats(c.LengthA));
        var b = run.With("b", rng.Floats(c.LengthB));
        var bias = run.With("bias", rng.Floats(c.N));
        var cc = c.Accumulate ? run.With("c", rng.Floats(c.LengthC)) : run.Poisoned("c", c.LengthC);
        var mag = c.Accumulate ? cc.Init.Abs() : new double[c.LengthC];
        R.MatMul(a.Init.Abs(), b.Init.Abs(), mag, s, Math.Abs(c.Alpha), accumulate: true);
        k.MatMul(a, b, cc, s, c.Alpha, c.Accumulate, bias);
        R.MatMul(a.Ref, b.Ref, cc.Ref, s, c.Alpha, c.Accumulate);
        for (int bt = 0; bt < c.Batch; bt++)
            for (int r = 0; r < c.M; r++)
                for (int j = 0; j < c.N; j++)
                {
                    long at = bt * s.StrideC + (long)r * c.N + j; // gaps between padded batches get no bias
                    cc.Ref[at] += bias.Ref[j];
                    mag[at] += Math.Abs(bias.Ref[j]);
                }
        run.Check(cc, i => (c.K + 3) * U * mag[i]); // one more rounding: the bias add
        run.CheckRest();
    }

    private static void Check(IKernels k, MatMulCase c)
    {
        var rng = TestRandom.For($"matmul {c}");
        var s = c.Shape;
        using var run = new OpRun(k);
        var a = run.With("a", rng.Floats(c.LengthA));
        var b = run.With("b", rng.Floats(c.LengthB));
        var cc = c.Accumulate ? run.With("c", rng.Floats(c.LengthC)) : run.Poisoned("c", c.LengthC);
        var mag = c.Accumulate ? cc.Init.Abs() : new double[c.LengthC];
        R.MatMul(a.Init.Abs(), b.Init.Abs(), mag, s, Math.Abs(c.Alpha), accumulate: true);
        k.MatMul(a, b, cc, s, c.Alpha, c.Accumulate);
        R.MatMul(a.Ref, b.Ref, cc.Ref, s, c.Alpha, c.Accumulate);
        run.Check(cc, i => (c.K + 2) * U * mag[i]);
        run.CheckRest();
    }
}
