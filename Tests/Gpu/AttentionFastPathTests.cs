using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The two GPU attention paths (GpuKernels.Attention.cs): the register-tiled fast path of
/// GpuKernels.AttentionSmall.cs for N ≤ 128 whose K/V rows and score chunk fit 32 KB of shared
/// memory, and the warp-per-row fallback. Each case first asserts which path it takes, then runs
/// forward and backward on the CPU simulator against float64 sums written here. Shapes hit the
/// fast path's edges: N = 1, d not a multiple of 4 or 8 (zero-padded Quads), N = 128 (the key
/// limit, 4 keys per lane in the softmax, chunks of 16 rows), balanced ragged chunks (N = 13, 41),
/// dropout (the mask must be the CPU's hash at (bh N + i) N + j in all three kernels); and just
/// past the limits (N = 129; N = 70, d = 64 where the shared budget is exceeded).
/// `=` outputs are poisoned with NaN, `+=` outputs start random (an overwrite fails).
///
/// Tolerance as GpuBackendTests: 4 u terms (|expected| + scale), u = 2^-24, terms = the length of
/// the longest float32 sum behind a value (n + d for o; twice that for the gradients, which chain
/// two sums), scale = the size of the summands (1 + the dropout keep scale).
/// </summary>
public sealed class AttentionFastPathTests(SimulatorFixture fx) : SimulatorTestBase(fx)
{

    [Fact]
    public void Fast_path_limits()
    {
        Assert.True(AttentionSmallKernels.Fits(65, 64));    // ViT on 32x32 images, patch 4
        Assert.True(AttentionSmallKernels.Fits(65, 32));
        Assert.True(AttentionSmallKernels.Fits(1, 1));
        Assert.True(AttentionSmallKernels.Fits(128, 8));
        Assert.False(AttentionSmallKernels.Fits(129, 8));   // more than 4 keys per lane
        Assert.False(AttentionSmallKernels.Fits(70, 64));   // K rows + chunks exceed 32 KB
        Assert.False(AttentionSmallKernels.Fits(65, 128));
        // Every score block of a chunk fits the group once (BackwardDkDv relies on it).
        for (int n = 1; n <= AttentionSmallKernels.MaxN; n++)
        {
            var g = AttentionSmallKernels.SmallGeometry(n, 8);
            Assert.True(g.R / 4 * g.Np4 <= AttentionSmallKernels.GroupSize, $"n = {n}");
            Assert.True(g.R * g.Chunks >= n && g.R * (g.Chunks - 1) < n, $"n = {n}: chunks cover the rows");
            Assert.True(g.R % 4 == 0 && (g.Dq4 + 1) % 2 == 1, $"n = {n}: Quad-aligned, odd row stride");
        }
    }

    [Theory]
    [InlineData(2, 1, 3, 0f, true)]       // one key: P = 1
    [InlineData(3, 13, 6, 0.3f, true)]    // d = 6: two pad columns; 1 chunk of 16 rows (13 valid)
    [InlineData(1, 41, 12, 0f, true)]     // 2 balanced chunks of 24 / 17 rows, d % 8 = 4
    [InlineData(1, 65, 9, 0.2f, true)]    // the ViT sequence length, 3 chunks of 24 / 24 / 17
    [InlineData(1, 128, 8, 0.1f, true)]   // the key limit: 4 keys per lane, 8 chunks of 16
    [InlineData(1, 129, 5, 0.1f, false)]  // past the key limit: fallback
    [InlineData(1, 70, 64, 0f, false)]    // past the shared budget: fallback
    public void Attention_path_matches_float64(int bh, int n, int d, float p, bool fast)
    {
        Assert.Equal(fast, AttentionSmallKernels.Fits(n, d));
        var r = new Random(bh * 7919 + n * 31 + d);
        int len = bh * n * d;
        var q = Rand(r, len); var k = Rand(r, len); var v = Rand(r, len); var dO = Rand(r, len);
        var dqI = Rand(r, len); var dkI = Rand(r, len); var dvI = Rand(r, len);
        float scale = 1f / MathF.Sqrt(d);
        const uint seed = 777;
        var qb = Up(q); var kb = Up(k); var vb = Up(v);
        var o = Poisoned(len); var lse = Poisoned(bh * n);
        K.AttentionForward(qb, kb, vb, o, lse, bh, n, d, scale, p, seed);
        var ov = Down(o);

        var eo = new double[len]; var eLse = new double[bh * n];
        var edq = new double[len]; var edk = new double[len]; var edv = new double[len];
        for (int t = 0; t < len; t++) { edq[t] = dqI[t]; edk[t] = dkI[t]; edv[t] = dvI[t]; }
        double keepScale = 1 / (1 - (double)p);
        for (int h = 0; h < bh; h++)
        {
            int hb = h * n * d;
            double Dot(float[] x, int i, float[] y, int j)
            {
                double s = 0;
                for (int c = 0; c < d; c++) s += (double)x[hb + i * d + c] * y[hb + j * d + c];
                return s;
            }
            var P = new double[n, n]; var keep = new double[n, n];
            for (int i = 0; i < n; i++)
            {
                var s = new double[n];
                for (int j = 0; j < n; j++) s[j] = scale * Dot(q, i, k, j);
                double max = s.Max(), sum = s.Sum(z => Math.Exp(z - max));
                eLse[h * n + i] = max + Math.Log(sum);
                for (int j = 0; j < n; j++)
                {
                    P[i, j] = Math.Exp(s[j] - eLse[h * n + i]);
                    keep[i, j] = p > 0 ? (KernelMath.DropoutKeep(seed, (uint)((h * n + i) * n + j), p) ? keepScale : 0) : 1;
                    for (int c = 0; c < d; c++) eo[hb + i * d + c] += P[i, j] * keep[i, j] * v[hb + j * d + c];
                }
            }
            for (int i = 0; i < n; i++)
            {
                double D = Dot(dO, i, ov, i);   // from the kernel's own o, as the backward pass sees it
                for (int j = 0; j < n; j++)
                {
                    double ds = P[i, j] * (keep[i, j] * Dot(dO, i, v, j) - D) * scale;
                    for (int c = 0; c < d; c++)
                    {
                        edq[hb + i * d + c] += ds * k[hb + j * d + c];
                        edk[hb + j * d + c] += ds * q[hb + i * d + c];
                        edv[hb + j * d + c] += P[i, j] * keep[i, j] * dO[hb + i * d + c];
                    }
                }
            }
        }
        Close(eo, ov, n + d, 1 + keepScale, "o");
        Close(eLse, Down(lse), n + d, 1, "lse");

        var dq = Up(dqI); var dk = Up(dkI); var dv = Up(dvI);
        K.AttentionBackward(qb, kb, vb, o, lse, Up(dO), dq, dk, dv, bh, n, d, scale, p, seed);
        Close(edq, Down(dq), 2 * (n + d), 2 * keepScale, "dq");
        Close(edk, Down(dk), 2 * (n + d), 2 * keepScale, "dk");
        Close(edv, Down(dv), 2 * (n + d), 2 * keepScale, "dv");
    }
}
