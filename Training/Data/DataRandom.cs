namespace ViTScratch.Training.Data;

/// <summary>
/// A tiny counter-based random stream for the data pipeline.
///
/// Why counter-based: every random decision (shuffle order, crop offset, flip, RandAugment op,
/// mixup lambda) must be a pure function of (seed, epoch, batch index, sample index). Then the
/// batches are bit-identical whatever the number of worker threads or their scheduling, and a
/// run resumed at (epoch, batch) sees exactly the batches the uninterrupted run would have seen.
/// A shared System.Random cannot give that; a stream keyed by those four numbers can.
///
/// Algorithm: the key is folded into a 64-bit state with the SplitMix64 finaliser (a strong
/// 64-bit mixer), and successive draws step the state by the golden-ratio increment and mix
/// again (SplitMix64 itself). Statistical quality is far beyond what augmentation needs.
/// </summary>
internal struct DataRandom
{
    private ulong _state;

    private DataRandom(ulong state) => _state = state;

    /// <summary>Distinct "stream tags" so the shuffle, per-sample and per-batch streams never collide.</summary>
    public const long ShuffleStream = -1, BatchStream = -2;

    /// <summary>The stream for one (seed, epoch, batch, sample) key; use the *Stream tags as sample for non-sample streams.</summary>
    public static DataRandom For(long seed, long epoch, long batch, long sample)
    {
        ulong h = Mix((ulong)seed ^ 0x243F6A8885A308D3UL);
        h = Mix(h ^ (ulong)epoch * 0x9E3779B97F4A7C15UL);
        h = Mix(h ^ (ulong)batch * 0xC2B2AE3D27D4EB4FUL);
        h = Mix(h ^ (ulong)sample * 0x165667B19E3779F9UL);
        return new DataRandom(h);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextULong()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n). Multiply-high mapping (Lemire) without the rejection step:
    /// its bias is below n / 2^64, irrelevant for n ≤ a few million.</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        return (int)Math.BigMul(NextULong(), (ulong)n, out _);
    }

    /// <summary>Uniform integer in [lo, hi] inclusive.</summary>
    public int NextInt(int lo, int hi) => lo + NextInt(hi - lo + 1);

    public bool NextBool() => (NextULong() >> 63) != 0;

    /// <summary>Standard normal by Box–Muller (one of the pair is discarded; speed is irrelevant here).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]: log is finite
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Gamma(shape, 1) by Marsaglia–Tsang; shape &lt; 1 uses the boost Gamma(a) = Gamma(a+1)·U^(1/a).</summary>
    public double NextGamma(double shape)
    {
        if (shape <= 0) throw new ArgumentOutOfRangeException(nameof(shape));
        if (shape < 1)
            return NextGamma(shape + 1) * Math.Pow(1.0 - NextDouble(), 1.0 / shape);
        double d = shape - 1.0 / 3.0, c = 1.0 / Math.Sqrt(9.0 * d);
        // The acceptance rate is > 95% for every shape ≥ 1; the bound only guards against a bug.
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            double x = NextGaussian(), v = 1.0 + c * x;
            if (v <= 0) continue;
            v = v * v * v;
            double u = 1.0 - NextDouble();
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v)) return d * v;
        }
        return shape; // unreachable in practice: return the mean
    }

    /// <summary>Beta(a, b) as X/(X+Y) with X ~ Gamma(a), Y ~ Gamma(b).</summary>
    public double NextBeta(double a, double b)
    {
        double x = NextGamma(a), y = NextGamma(b);
        return x + y > 0 ? x / (x + y) : 0.5;
    }
}
