using ViTScratch.Kernels.Cpu.MatMul;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The matmul's A and B packing against their definitions. B:: panel jr of nr columns stored [kc][nr], columns
/// past the edge zero, for B read as stored and transposed, both ways of transposing (8 x 8 register
/// blocks, the scalar loop the blocks fall back to; with and without prefetching rows ahead), on
/// ragged depths and widths and at an offset
/// (p0, j0) into a larger matrix. A: panel ir of mr rows stored [kc][mr], rows past the edge
/// zero, as stored and transposed, both ways, for the AVX2 (6) and AVX-512 (8) panel heights.
/// </summary>
public unsafe class PackingTests
{
    [Theory]
    [InlineData(1, 5, 16)]
    [InlineData(7, 16, 16)]
    [InlineData(8, 33, 16)]
    [InlineData(13, 48, 16)]
    [InlineData(384, 20, 16)]
    [InlineData(19, 70, 32)]
    [InlineData(256, 32, 32)]
    public void PackBMatchesTheDefinition(int kc, int nc, int nr)
    {
        int p0 = 3, j0 = 2, K = p0 + kc + 4, N = j0 + nc + 5;
        var rnd = new Random(kc * 100 + nc);
        var stored = new float[K * N]; // [K, N] as stored, or [N, K] when transposed
        for (int i = 0; i < stored.Length; i++) stored[i] = (float)(rnd.NextDouble() - 0.5);
        int panels = (nc + nr - 1) / nr;
        foreach (bool transB in new[] { false, true })
            foreach (bool blocked in new[] { false, true })
            {
                long ldb = transB ? K : N;
                var dst = new float[panels * kc * nr + Guard]; // then a guard: nothing may be written past the panels
                Array.Fill(dst, float.NaN); // every element must be written
                fixed (float* b = stored, d = dst) Packing.PackB(b, ldb, transB, p0, kc, j0, nc, nr, d, blocked, ahead: blocked ? Packing.RowsAhead : 0);
                for (int panel = 0; panel < panels; panel++)
                    for (int p = 0; p < kc; p++)
                        for (int j = 0; j < nr; j++)
                        {
                            int col = panel * nr + j;
                            float expected = col >= nc ? 0f
                                : transB ? stored[(j0 + col) * ldb + p0 + p] : stored[(p0 + p) * ldb + j0 + col];
                            Assert.Equal(expected, dst[(panel * kc + p) * nr + j]);
                        }
                GuardUntouched(dst, panels * kc * nr);
            }
    }

    [Theory]
    [InlineData(1, 5, 8)]
    [InlineData(7, 16, 8)]
    [InlineData(8, 8, 8)]
    [InlineData(13, 30, 8)]
    [InlineData(256, 20, 8)]
    [InlineData(19, 13, 6)]
    [InlineData(384, 12, 6)]
    public void PackAMatchesTheDefinition(int kc, int mc, int mr)
    {
        int i0 = 2, p0 = 3, M = i0 + mc + 5, K = p0 + kc + 4;
        var rnd = new Random(kc * 100 + mc);
        var stored = new float[M * K]; // [M, K] as stored, or [K, M] when transposed
        for (int i = 0; i < stored.Length; i++) stored[i] = (float)(rnd.NextDouble() - 0.5);
        int panels = (mc + mr - 1) / mr;
        foreach (bool transA in new[] { false, true })
            foreach (bool blocked in new[] { false, true })
            {
                long lda = transA ? M : K;
                var dst = new float[panels * kc * mr + Guard]; // then a guard: nothing may be written past the panels
                Array.Fill(dst, float.NaN); // every element must be written
                fixed (float* a = stored, d = dst) Packing.PackA(a, lda, transA, i0, mc, p0, kc, mr, d, blocked, ahead: blocked ? Packing.RowsAhead : 0);
                for (int panel = 0; panel < panels; panel++)
                    for (int p = 0; p < kc; p++)
                        for (int r = 0; r < mr; r++)
                        {
                            int row = panel * mr + r;
                            float expected = row >= mc ? 0f
                                : transA ? stored[(p0 + p) * lda + i0 + row] : stored[(i0 + row) * lda + p0 + p];
                            Assert.Equal(expected, dst[(panel * kc + p) * mr + r]);
                        }
                GuardUntouched(dst, panels * kc * mr);
            }
    }

    // Floats past the packed panels. A packing loop that runs one k row, one 8 x 8 block or one
    // panel too far writes there; such writes survived mutation testing (docs/testing.md), since the
    // next panel overwrote them or the pack buffers had room to spare.
    private const int Guard = 512;

    private static void GuardUntouched(float[] dst, int packed)
    {
        for (int e = packed; e < dst.Length; e++)
            if (!float.IsNaN(dst[e])) Assert.Fail($"wrote past the packed panels, {e - packed} floats after their end");
    }
}
