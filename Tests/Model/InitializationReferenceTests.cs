using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The initialisation's generator against an independent implementation, itself pinned by the
/// published test vectors of its parts: SplitMix64 (Vigna's splitmix64.c, seed 1234567) and
/// FNV-1a 64 (the FNV authors' test values). Without this, any other well-mixed stream would pass
/// every statistical test of the weights, and the same seed would silently give another model.
/// </summary>
public class InitializationReferenceTests
{
    /// <summary>splitmix64.c as published, written out again here.</summary>
    private sealed class ReferenceSplitMix64(ulong seed)
    {
        private ulong _x = seed;

        public ulong Next()
        {
            ulong z = _x += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    [Fact]
    public void TheReferenceGeneratorGivesThePublishedValues()
    {
        var rng = new ReferenceSplitMix64(1234567);
        ulong[] published = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821];
        Assert.Equal(published, published.Select(_ => rng.Next()));
    }

    [Fact]
    public void StreamSeedIsFnv1aOfTheNameMixedWithTheSeed()
    {
        // FNV-1a 64 of "", "a" and "foobar" (published); seed 0 leaves the hash as it is.
        Assert.Equal(0xCBF29CE484222325UL, Initialization.StreamSeed(0, ""));
        Assert.Equal(0xAF63DC4C8601EC8CUL, Initialization.StreamSeed(0, "a"));
        Assert.Equal(0x85944171F73967E8UL, Initialization.StreamSeed(0, "foobar"));
        // Other seeds: xor with seed · 2^64/φ, the seed read as unsigned 32 bits.
        Assert.Equal(0xAF63DC4C8601EC8CUL ^ 0x9E3779B97F4A7C15UL, Initialization.StreamSeed(1, "a"));
        Assert.Equal(0xAF63DC4C8601EC8CUL ^ unchecked(0xFFFFFFFFUL * 0x9E3779B97F4A7C15UL), Initialization.StreamSeed(-1, "a"));
        // Names are hashed as UTF-8 bytes: "é" is 0xC3 0xA9.
        ulong h = 0xCBF29CE484222325UL;
        foreach (byte b in new byte[] { 0xC3, 0xA9 }) h = (h ^ b) * 0x100000001B3UL;
        Assert.Equal(h, Initialization.StreamSeed(0, "é"));
    }

    [Fact]
    public void EachNormalIsBoxMullerOverTwoUnitDraws()
    {
        // Exact in double: a unit draw off by one in its last place (the +1 that keeps it in
        // (0, 1]) rarely changes the float32 weights but always changes these.
        foreach (ulong seed in new[] { 0UL, 1234567UL, 0xAF63DC4C8601EC8CUL })
        {
            var reference = new ReferenceSplitMix64(seed);
            double unit() => ((reference.Next() >> 11) + 1) / 9007199254740992.0;
            var rng = new Initialization.SplitMix64(seed);
            for (int i = 0; i < 1000; i++)
            {
                double u1 = unit(), u2 = unit();
                Assert.Equal(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2), rng.NextGaussian());
            }
        }
        Assert.Equal(new ReferenceSplitMix64(99).Next(), new Initialization.SplitMix64(99).Next());
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(0xAF63DC4C8601EC8CUL)]
    [InlineData(ulong.MaxValue)]
    public void TruncatedNormalIsBoxMullerOverSplitMix64WithRejectionAtTwoStd(ulong streamSeed)
    {
        // Each normal takes two draws u1, u2 = ((next >> 11) + 1) / 2^53 in (0, 1]:
        // z = sqrt(-2 ln u1) · cos(2π u2); |z| > 2 is drawn again; the value is (float)(z · std).
        const int n = 4000;
        const float std = 0.02f;
        var rng = new ReferenceSplitMix64(streamSeed);
        double unit() => ((rng.Next() >> 11) + 1) / 9007199254740992.0;
        var expected = new float[n];
        int rejected = 0;
        for (int i = 0; i < n; i++)
        {
            while (true)
            {
                double u1 = unit(), u2 = unit();
                double z = Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
                if (Math.Abs(z) <= 2.0) { expected[i] = (float)(z * std); break; }
                rejected++;
            }
        }
        var actual = new float[n];
        Initialization.TruncatedNormal(actual, std, streamSeed);
        Assert.Equal(expected, actual); // bit for bit
        // 4.55% of a normal lies beyond 2 std: the rejections are in that proportion (5 sigma).
        double p = 0.0455, draws = n + rejected;
        Assert.InRange(rejected, draws * p - 5 * Math.Sqrt(draws * p * (1 - p)), draws * p + 5 * Math.Sqrt(draws * p * (1 - p)));
    }
}
