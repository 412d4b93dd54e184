using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Model;
using ViTScratch.Tests.TestSupport;
using Xunit;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

public sealed record MaskCase(float P)
{
    public static IEnumerable<MaskCase> For(bool slow) => new[] { 0.1f, 0.5f, 0.9f }.Select(p => new MaskCase(p));
}

/// <summary>
/// The random masks judged by their statistics, not by the hash that draws them: every other
/// dropout test compares a backend with KernelMath.DropoutKeep, so a wrong keep threshold in that
/// one function (both its scalar and vector copies) would pass them all while every dropout layer
/// trained biased. Here nothing calls DropoutKeep: the masks are read back from what the kernels
/// output and compared with what dropout must be, over about a million draws (2^17 on the
/// simulator, which is slow; the bounds scale with the count):
///   the kept fraction is 1 - p, within 5 standard deviations sqrt(p (1 - p) / n);
///   kept values are x / (1 - p) and E[dropout(x)] = E[x] (5 standard errors of the sample);
///   masks of different seeds, (step, site) pairs, heads and neighbouring elements are
///   independent: both kept in a fraction (1 - p)^2 of positions, within 5 standard deviations;
///   the backward pass applies the very mask the forward pass drew.
/// Patch dropout keeps round((1 - p) N) of N patches, each equally often, with independent steps.
/// </summary>
[Collection(BackendCollection.Name)]
public class RandomMaskStatisticsTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, MaskCase> Rows => BackendMatrix.Rows(MaskCase.For);

    private static int Draws(string backend) => BackendMatrix.IsSlow(backend) ? 1 << 17 : 1 << 20;

    /// <summary>Fails unless a frequency <paramref name="count"/>/<paramref name="n"/> is within 5 sigma of <paramref name="q"/>.</summary>
    private static void Frequency(string what, long count, long n, double q)
    {
        double f = (double)count / n, sigma = Math.Sqrt(q * (1 - q) / n);
        Assert.True(Math.Abs(f - q) <= 5 * sigma,
            $"{what}: frequency {f:F5} over {n} draws, expected {q:F5} ± {5 * sigma:F5} (5 sigma)");
    }

    private static void BothKept(string what, bool[] a, bool[] b, double keep, int lag = 0)
    {
        long both = 0;
        for (int i = 0; i + lag < a.Length; i++) if (a[i] && b[i + lag]) both++;
        Frequency(what, both, a.Length - lag, keep * keep);
    }

    /// <summary>Runs DropoutForward on x and returns y (the mask is y != 0: x is never 0).</summary>
    private static float[] Forward(IKernels k, float[] x, float p, uint seed)
    {
        using var xb = k.Upload(x);
        using var yb = k.Allocate(x.Length);
        k.DropoutForward(xb, yb, x.Length, p, seed);
        return k.Download(yb);
    }

    [Theory, MemberData(nameof(Rows))]
    public void Dropout_keeps_1_minus_p_scales_by_its_inverse_and_preserves_the_mean(string backend, MaskCase c)
    {
        var k = fixture.Get(backend);
        int n = Draws(backend);
        var x = TestRandom.For($"dropout stats {c}").Floats(n, 0.5, 1.5);
        var y = Forward(k, x, c.P, seed: 12345);
        double scale = 1 / (1 - (double)c.P);
        long kept = 0;
        double sumX = 0, sumD = 0, sumD2 = 0;
        for (int i = 0; i < n; i++)
        {
            if (y[i] != 0)
            {
                kept++;
                // y = x (1/(1 - p) rounded to float), rounded: two roundings.
                Assert.True(Math.Abs(y[i] - x[i] * scale) <= 2 * U * x[i] * scale, $"kept y[{i}] = {y[i]}, expected x / (1 - p) = {x[i] * scale}");
            }
            double d = y[i] - x[i];
            sumX += x[i]; sumD += d; sumD2 += d * d;
        }
        Frequency($"{backend}: kept fraction at p = {c.P}", kept, n, 1 - c.P);
        double meanD = sumD / n, se = Math.Sqrt((sumD2 / n - meanD * meanD) / n);
        Assert.True(Math.Abs(meanD) <= 5 * se, $"{backend}: E[dropout(x)] - E[x] = {meanD:E3} (E[x] = {sumX / n:F4}), more than 5 standard errors ({5 * se:E3})");

        // The backward pass must apply the same mask with the same scale: dx = 0 + 1 · mask / (1 - p).
        using var dy = k.Upload(Enumerable.Repeat(1f, n).ToArray());
        using var dx = k.Allocate(n);
        k.DropoutBackward(dy, dx, n, c.P, seed: 12345);
        var g = k.Download(dx);
        for (int i = 0; i < n; i++)
            if ((g[i] != 0) != (y[i] != 0) || (g[i] != 0 && Math.Abs(g[i] - scale) > U * scale))
                Assert.Fail($"{backend}: backward factor [{i}] = {g[i]} but the forward kept it: {y[i] != 0} (scale {scale})");
    }

    [Theory, MemberData(nameof(Rows))]
    public void Dropout_masks_are_independent_across_seeds_steps_sites_and_neighbours(string backend, MaskCase c)
    {
        var k = fixture.Get(backend);
        int n = Draws(backend) / 4;
        var x = Enumerable.Repeat(1f, n).ToArray();
        double keep = 1 - c.P;
        bool[] Mask(uint seed) => Forward(k, x, c.P, seed).Select(v => v != 0).ToArray();

        // Seeds as the model derives them: steps 0 and 1 of sites 0 and 1 (and raw seeds 0 and 1).
        var seeds = new DropoutSeeds(modelSeed: 7);
        var masks = new List<(string, bool[])> { ("seed 0", Mask(0)), ("seed 1", Mask(1)) };
        foreach (uint step in new uint[] { 0, 1 })
        {
            seeds.Step = step;
            foreach (int site in new[] { 0, 1 }) masks.Add(($"step {step} site {site}", Mask(seeds.SeedFor(site))));
        }
        for (int a = 0; a < masks.Count; a++)
            for (int b = a + 1; b < masks.Count; b++)
                BothKept($"{backend}: {masks[a].Item1} and {masks[b].Item1} both kept", masks[a].Item2, masks[b].Item2, keep);
        // Within one mask: neighbours, and elements one SIMD vector (8, 16) or warp (32) apart.
        foreach (int lag in new[] { 1, 8, 16, 32 })
            BothKept($"{backend}: elements {lag} apart both kept", masks[0].Item2, masks[0].Item2, keep, lag);
    }

    /// <summary>
    /// Attention dropout read out of the forward pass: with q = k = 0 every probability is 1/N, and
    /// with v the N x N identity, o_ij = M_ij / N, so o is the mask itself.
    /// </summary>
    [Theory, MemberData(nameof(Rows))]
    public void Attention_dropout_keeps_1_minus_p_independently_and_the_backward_uses_the_same_mask(string backend, MaskCase c)
    {
        var k = fixture.Get(backend);
        // The simulator spends about 0.1 s per head and call: it gets 2 heads of 32 x 32 (2048
        // draws, still 7 sigma from half the drop rate at p = 0.1); the others 2^20 draws.
        bool slow = BackendMatrix.IsSlow(backend);
        int N = slow ? 32 : 64, bh = slow ? 2 : Draws(backend) / (N * N), len = bh * N * N;
        float scale = 1f / MathF.Sqrt(N);
        var v = new float[len];
        for (int h = 0; h < bh; h++) for (int i = 0; i < N; i++) v[(h * N + i) * N + i] = 1f;
        using var zeros = k.Allocate(len);
        using var vb = k.Upload(v);
        using var o = k.Allocate(len);
        using var lse = k.Allocate(bh * N);
        k.AttentionForward(zeros, zeros, vb, o, lse, bh, N, N, scale, c.P, 999);
        var ov = k.Download(o);

        var mask = ov.Select(x => x != 0).ToArray();
        double keep = 1 - c.P, sum = 0;
        foreach (float x in ov) sum += x * N;
        Frequency($"{backend}: attention kept fraction at p = {c.P}", mask.Count(m => m), len, keep);
        // E[M P] = P: the mean of o N is 1, within 5 standard errors of a mean of len factors 0 or 1/(1-p).
        double se = Math.Sqrt(c.P / (1 - c.P) / len);
        Assert.True(Math.Abs(sum / len - 1) <= 5 * se + 8 * N * U, $"{backend}: mean attention dropout factor {sum / len:F5}, expected 1 ± {5 * se:F5}");
        // Neighbouring keys of one row, the same (i, j) in consecutive heads, and two seeds.
        BothKept($"{backend}: neighbouring keys", mask, mask, keep, lag: 1);
        BothKept($"{backend}: next head", mask, mask, keep, lag: N * N);
        k.AttentionForward(zeros, zeros, vb, o, lse, bh, N, N, scale, c.P, 1000);
        BothKept($"{backend}: seeds 999 and 1000", mask, k.Download(o).Select(x => x != 0).ToArray(), keep);

        // Backward with dO = identity: dv_j[c] += M_cj P_cj, the transposed mask of the seed-999 forward.
        k.AttentionForward(zeros, zeros, vb, o, lse, bh, N, N, scale, c.P, 999);
        using var dq = k.Allocate(len);
        using var dk = k.Allocate(len);
        using var dv = k.Allocate(len);
        k.AttentionBackward(zeros, zeros, vb, o, lse, vb, dq, dk, dv, bh, N, N, scale, c.P, 999);
        var dvv = k.Download(dv);
        for (int h = 0; h < bh; h++)
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++)
                {
                    float fwd = ov[(h * N + i) * N + j], bwd = dvv[(h * N + j) * N + i];
                    if ((fwd != 0) != (bwd != 0))
                        Assert.Fail($"{backend}: head {h} score ({i}, {j}): forward {(fwd != 0 ? "kept" : "dropped")} it, backward {(bwd != 0 ? "kept" : "dropped")} it");
                }
    }

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    [InlineData(0.9f)]
    public void Patch_dropout_keeps_1_minus_p_of_the_patches_uniformly_and_independently_per_step(float p)
    {
        const int N = 64, Steps = 1 << 14; // N draws a step: about a million in all
        var seeds = new DropoutSeeds(modelSeed: 3);
        var layer = new PatchDropout(p, N, seeds);
        int keep = layer.Keep;
        Assert.True(Math.Abs((double)keep / N - (1 - p)) <= 0.5 / N, $"keeps {keep} of {N} patches at p = {p}");
        double q = (double)keep / N;

        var counts = new long[N + 1];
        long pair12 = 0, pairFar = 0;
        double overlapSum = 0;
        var previous = new bool[N + 1];
        for (int s = 0; s < Steps; s++)
        {
            seeds.Step = (uint)s;
            var tokens = layer.KeptTokens(seeds.SeedFor(layer.Site));
            Assert.Equal(keep + 1, tokens.Length);
            Assert.Equal(0, tokens[0]);                                     // the cls token, always
            var kept = new bool[N + 1];
            foreach (int t in tokens.Skip(1)) { Assert.InRange(t, 1, N); Assert.False(kept[t], $"token {t} twice"); kept[t] = true; counts[t]++; }
            Assert.True(tokens.Skip(1).Zip(tokens.Skip(2)).All(t => t.First < t.Second), "kept tokens ascending");
            if (kept[1] && kept[2]) pair12++;
            if (kept[1] && kept[N]) pairFar++;
            if (s > 0) overlapSum += Enumerable.Range(1, N).Count(t => kept[t] && previous[t]);
            previous = kept;
        }
        for (int t = 1; t <= N; t++) Frequency($"patch {t} kept at p = {p}", counts[t], Steps, q);
        double qPair = keep * (keep - 1.0) / (N * (N - 1.0));   // a uniform sample of keep of N
        Frequency("patches 1 and 2 both kept", pair12, Steps, qPair);
        Frequency($"patches 1 and {N} both kept", pairFar, Steps, qPair);
        // Consecutive steps draw independently: their overlap is hypergeometric, mean keep^2/N.
        double mean = (double)keep * keep / N, variance = keep * q * (1 - q) * (N - keep) / (N - 1.0);
        double sigma = Math.Sqrt(variance / (Steps - 1));
        Assert.True(Math.Abs(overlapSum / (Steps - 1) - mean) <= 5 * sigma + 1e-12,
            $"mean overlap of consecutive steps {overlapSum / (Steps - 1):F4}, expected {mean:F4} ± {5 * sigma:F4}");
    }

    /// <summary>The model's Dropout layers: each site and step draws its own mask (a site that reused another's seed would fail).</summary>
    [Fact]
    public void Dropout_layers_draw_independent_masks_per_site_and_step()
    {
        using var dev = Device.Create("cpu");
        const int n = 1 << 18;
        const float p = 0.5f;
        var seeds = new DropoutSeeds(modelSeed: 11);
        var sites = new[] { new Dropout(p, seeds), new Dropout(p, seeds), new Dropout(p, seeds) };
        using var _ = Tensor.NoGrad();
        var x = Tensor.FromArray(dev, Enumerable.Repeat(1f, n).ToArray(), n);
        var masks = new List<(string, bool[])>();
        foreach (uint step in new uint[] { 5, 6 })
        {
            seeds.Step = step;
            foreach (var d in sites)
            {
                var m = d.Forward(x).ToArray().Select(v => v != 0).ToArray();
                Frequency($"site {d.Site} step {step} kept", m.Count(b => b), n, 1 - p);
                masks.Add(($"site {d.Site} step {step}", m));
            }
        }
        for (int a = 0; a < masks.Count; a++)
            for (int b = a + 1; b < masks.Count; b++)
                BothKept($"{masks[a].Item1} and {masks[b].Item1}", masks[a].Item2, masks[b].Item2, 1 - p);
    }
}
