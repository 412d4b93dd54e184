using System.Text;

namespace ViTScratch.Model;

/// <summary>
/// Seeded parameter initialisation. Each parameter draws from its own stream, keyed by the model
/// seed and a hash of its dotted name, so a parameter's initial values depend only on (seed, name):
/// the same seed gives the same model, and adding a layer does not reshuffle the others.
/// The generator is written out here (SplitMix64, Box–Muller) rather than System.Random so the
/// values are defined by this file, not by a runtime version.
/// </summary>
public static class Initialization
{
    /// <summary>Standard deviation of the truncated-normal weight initialisation.</summary>
    public const float Std = 0.02f;

    /// <summary>Fills every parameter of <paramref name="module"/> according to its <see cref="Parameter.Init"/>.</summary>
    public static void Apply(Module module, int seed)
    {
        foreach (var (name, p) in module.NamedParameters())
        {
            var values = new float[p.Length];
            switch (p.Init)
            {
                case ParameterInit.Ones: Array.Fill(values, 1f); break;
                case ParameterInit.Zeros: break;
                case ParameterInit.TruncatedNormal: TruncatedNormal(values, Std, StreamSeed(seed, name)); break;
            }
            p.Value.CopyFrom(values);
        }
    }

    /// <summary>
    /// Normal(0, std²) restricted to [-2 std, 2 std] by rejection, as timm's trunc_normal_(std=.02)
    /// with a = -2 std, b = 2 std. About 4.6 % of draws are rejected.
    /// </summary>
    public static void TruncatedNormal(Span<float> values, float std, ulong streamSeed)
    {
        var rng = new SplitMix64(streamSeed);
        for (int i = 0; i < values.Length; i++)
        {
            double z;
            do z = rng.NextGaussian(); while (Math.Abs(z) > 2.0);
            values[i] = (float)(z * std);
        }
    }

    /// <summary>The stream of one parameter: the seed mixed with a FNV-1a hash of its name
    /// (string.GetHashCode is randomised per process, so it cannot be used here).</summary>
    public static ulong StreamSeed(int seed, string name)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (byte b in Encoding.UTF8.GetBytes(name)) h = (h ^ b) * 0x100000001B3UL;
        return h ^ ((ulong)(uint)seed * 0x9E3779B97F4A7C15UL);
    }

    /// <summary>SplitMix64 (Steele, Lea, Flood 2014): a tiny 64-bit generator that passes BigCrush.
    /// Internal for InitializationReferenceTests.</summary>
    internal struct SplitMix64(ulong state)
    {
        private ulong _state = state;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in (0, 1]: 53 random bits, shifted away from 0 so the log below is finite.</summary>
        private double NextUnit() => ((Next() >> 11) + 1) * (1.0 / 9007199254740992.0);

        /// <summary>One standard normal by Box–Muller (the second value of the pair is discarded for simplicity).</summary>
        public double NextGaussian() => Math.Sqrt(-2.0 * Math.Log(NextUnit())) * Math.Cos(2.0 * Math.PI * NextUnit());
    }
}
