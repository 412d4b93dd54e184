using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// Which of the two GPU attention paths (GpuKernels.Attention.cs) a shape takes: the register-tiled
/// fast path of AttentionKernels.cs for N ≤ 128 whose K/V rows and score chunk fit 32 KB
/// of shared memory, or the warp-per-row fallback. The numbers themselves are checked in the
/// backend matrix (AttentionMatrixTests, AttentionCase.FastPathEdges on the simulator) against
/// float64 within derived bounds; this class checks that those cases really reach both paths.
/// </summary>
public sealed class AttentionFastPathTests
{
    [Fact]
    public void Fast_path_limits()
    {
        Assert.True(AttentionKernels.Fits(65, 64));    // ViT on 32x32 images, patch 4
        Assert.True(AttentionKernels.Fits(65, 32));
        Assert.True(AttentionKernels.Fits(1, 1));
        Assert.True(AttentionKernels.Fits(128, 8));
        Assert.False(AttentionKernels.Fits(129, 8));   // more than 4 keys per lane
        Assert.False(AttentionKernels.Fits(70, 64));   // K rows + chunks exceed 32 KB
        Assert.False(AttentionKernels.Fits(65, 128));
        // Every score block of a chunk fits the group once (BackwardDkDv relies on it).
        for (int n = 1; n <= AttentionKernels.MaxN; n++)
        {
            var g = AttentionKernels.GeometryFor(n, 8);
            Assert.True(g.R / 4 * g.Np4 <= AttentionKernels.GroupSize, $"n = {n}");
            Assert.True(g.R * g.Chunks >= n && g.R * (g.Chunks - 1) < n, $"n = {n}: chunks cover the rows");
            Assert.True(g.R % 4 == 0 && (g.DQuadsPadded + 1) % 2 == 1, $"n = {n}: Quad-aligned, odd row stride");
        }
    }

    [Fact]
    public void The_matrix_cases_reach_the_fast_path_edges_and_the_fallback()
    {
        var slow = ViTScratch.Tests.Kernels.AttentionCase.For(slow: true).ToList();
        foreach (var (n, d) in new[] { (1, 3), (13, 6), (41, 12), (65, 9), (128, 8), (65, 64), (17, 32) })
        {
            Assert.True(AttentionKernels.Fits(n, d), $"({n}, {d}) should take the fast path");
            Assert.Contains(slow, c => c.N == n && c.D == d);
        }
        foreach (var (n, d) in new[] { (129, 5), (70, 64) })
        {
            Assert.False(AttentionKernels.Fits(n, d), $"({n}, {d}) should take the fallback");
            Assert.Contains(slow, c => c.N == n && c.D == d);
        }
        Assert.Contains(slow, c => c.DropoutP > 0 && AttentionKernels.Fits(c.N, c.D));
        Assert.Contains(slow, c => c.DropoutP > 0 && !AttentionKernels.Fits(c.N, c.D));
    }
}
