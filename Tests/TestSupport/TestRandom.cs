namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// Seeded random test data. The seed is derived from a string naming the test case, so every case
/// gets its own inputs, a failure reproduces exactly, and no two cases share data by accident.
/// Values are never all zero and never round (uniform floats in a range), so a kernel that reads
/// the wrong element almost surely produces a visibly wrong result.
/// </summary>
public sealed class TestRandom
{
    private readonly Random _rng;

    public TestRandom(int seed) => _rng = new Random(seed);

    /// <summary>A stable (across runs and processes) seed from a case description.</summary>
    public static TestRandom For(string caseName)
    {
        uint h = 2166136261;
        foreach (char ch in caseName) h = (h ^ ch) * 16777619; // FNV-1a: string.GetHashCode is randomised per process
        return new TestRandom((int)h);
    }

    public double NextDouble() => _rng.NextDouble();

    public int Next(int maxExclusive) => _rng.Next(maxExclusive);

    public int Next(int min, int maxExclusive) => _rng.Next(min, maxExclusive);

    public uint NextUInt() => (uint)_rng.NextInt64(0, 1L << 32);

    /// <summary>n floats uniform in [lo, hi).</summary>
    public float[] Floats(int n, double lo = -1, double hi = 1)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(lo + (hi - lo) * _rng.NextDouble());
        return a;
    }

    /// <summary>n doubles uniform in [lo, hi).</summary>
    public double[] Doubles(int n, double lo = -1, double hi = 1)
    {
        var a = new double[n];
        for (int i = 0; i < n; i++) a[i] = lo + (hi - lo) * _rng.NextDouble();
        return a;
    }

    /// <summary>n class labels in [0, classes), as floats (how labels travel in IKernels).</summary>
    public float[] Labels(int n, int classes)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = _rng.Next(classes);
        return a;
    }
}

public static class ArrayExtensions
{
    public static double[] ToDouble(this float[] a) => Array.ConvertAll(a, v => (double)v);

    public static float[] ToFloat(this double[] a) => Array.ConvertAll(a, v => (float)v);

    public static double[] Abs(this double[] a) => Array.ConvertAll(a, Math.Abs);

    public static double[] Abs(this float[] a) => Array.ConvertAll(a, v => (double)Math.Abs(v));
}
