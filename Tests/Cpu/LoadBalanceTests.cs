using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Tests.TestSupport;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// CpuKernels.ChunksPerWorker only changes how the matmul and attention cut their work into
/// pieces for the cores (slabs of rows or columns; ranges of (batch, head) pairs). Every element is
/// still computed by one thread in the same order, so the results must be identical bit for bit
/// to the one-piece-per-core split, on shapes tall or wide enough to be cut into several slabs.
/// </summary>
public class LoadBalanceTests
{
    [Theory]
    [InlineData(1, 4100, 70, 50, false, false)]  // tall: 8 row slabs instead of 2
    [InlineData(1, 50, 70, 4100, false, true)]   // wide: column slabs
    [InlineData(1, 3000, 33, 77, true, false)]   // A read transposed
    [InlineData(3, 1100, 20, 30, false, false)]  // a batch smaller than the pieces: slabs per batch
    [InlineData(9, 60, 20, 30, false, false)]    // a batch larger than the pieces: whole batches
    public void MatMulIsIdenticalHoweverItIsCut(int batch, int m, int k, int n, bool transA, bool transB)
    {
        var shape = MatMulShape.Batched(batch, m, n, k, transA, transB);
        var rnd = new Random(m + n + k);
        float[] a = Rand(rnd, batch * m * k), b = Rand(rnd, batch * k * n), c0 = Rand(rnd, batch * m * n), bias = Rand(rnd, n);
        float[]? reference = null;
        foreach (int chunks in new[] { 1, 4, 7 })
        {
            var kern = new CpuKernels { ChunksPerWorker = chunks };
            var C = kern.Upload(c0);
            kern.MatMul(kern.Upload(a), kern.Upload(b), C, shape, 0.75f, accumulate: true);
            kern.MatMul(kern.Upload(a), kern.Upload(b), C, shape, 1.25f, accumulate: false, bias: batch == 1 ? kern.Upload(bias) : null);
            var c = kern.Download(C);
            if (reference is null) reference = c;
            else Assert.Equal(reference, c);
        }
    }

    [Fact]
    public void AttentionIsIdenticalHoweverItIsCut()
    {
        int bh = 24, n = 19, d = 12, len = bh * n * d;
        var rnd = new Random(5);
        float[] q = Rand(rnd, len), k = Rand(rnd, len), v = Rand(rnd, len), dO = Rand(rnd, len);
        float[][]? reference = null;
        foreach (int chunks in new[] { 1, 4, 7 })
        {
            var kern = new CpuKernels { ChunksPerWorker = chunks };
            var (Q, K, V, G) = (kern.Upload(q), kern.Upload(k), kern.Upload(v), kern.Upload(dO));
            var (O, L) = (kern.Allocate(len), kern.Allocate(bh * n));
            var (dQ, dK, dV) = (kern.Allocate(len), kern.Allocate(len), kern.Allocate(len));
            kern.AttentionForward(Q, K, V, O, L, bh, n, d, 0.3f, 0.1f, 77u);
            kern.AttentionBackward(Q, K, V, O, L, G, dQ, dK, dV, bh, n, d, 0.3f, 0.1f, 77u);
            var outputs = new[] { O, L, dQ, dK, dV }.Select(kern.Download).ToArray();
            if (reference is null) reference = outputs;
            else for (int i = 0; i < outputs.Length; i++) Assert.Equal(reference[i], outputs[i]);
        }
    }

    private static float[] Rand(Random rnd, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() * 2 - 1);
        return x;
    }
}
