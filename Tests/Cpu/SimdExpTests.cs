using System.Runtime.Intrinsics;
using ViTScratch.Kernels.Cpu;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The float exp that softmax, attention and GELU use (<see cref="Simd.Exp(Vector256{float})"/>
/// and its Vector512 twin, which runs here through .NET's emulation when the CPU has no AVX-512),
/// against Math.Exp in float64.
///
/// Tolerance: Cephes' expf is accurate to about 1 ulp; 1.5e-7 relative (2.5 u, u = 2^-24) leaves
/// room for the final rounding of p * 2^n but would catch a wrong coefficient or range reduction,
/// which costs 1e-5 or more.
/// </summary>
public class SimdExpTests
{
    private const double RelTol = 1.5e-7;

    public static TheoryData<int> Widths() => new() { 8, 16 };

    [Theory]
    [MemberData(nameof(Widths))]
    public void MatchesFloat64OverTheWholeRange(int width)
    {
        var rnd = new Random(width);
        var xs = new List<float>();
        for (float x = -87f; x <= 88.5f; x += 0.0137f) xs.Add(x);          // a dense sweep
        for (int i = 0; i < 4000; i++) xs.Add((float)(rnd.NextDouble() * 40 - 30)); // softmax-like scores
        var ys = Eval(xs.ToArray(), width);
        for (int i = 0; i < xs.Count; i++)
        {
            double want = Math.Exp(xs[i]);
            double rel = Math.Abs(ys[i] - want) / want;
            Assert.True(rel <= RelTol, $"exp({xs[i]:R}) = {ys[i]:R}, want {want:R} (relative error {rel:E2})");
        }
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void EdgesUnderflowOverflowAndNaN(int width)
    {
        float[] x = [0f, -0f, 1f, -1f, -87.3f, -87.4f, -100f, float.NegativeInfinity, 88.7f, 88.8f, 1000f, float.PositiveInfinity, float.NaN];
        var y = Eval(x, width);
        Assert.Equal(1f, y[0]);
        Assert.Equal(1f, y[1]);
        Assert.True(Math.Abs(y[2] - Math.E) / Math.E <= RelTol);
        Assert.True(Math.Abs(y[3] - 1 / Math.E) * Math.E <= RelTol);
        Assert.True(y[4] > 0f && float.IsNormal(y[4]), $"exp(-87.3) = {y[4]:R}");   // still a normal float
        Assert.Equal(0f, y[5]);                                // below 2^-126: flushed to 0, no denormals
        Assert.Equal(0f, y[6]);
        Assert.Equal(0f, y[7]);
        Assert.True(float.IsFinite(y[8]) && Math.Abs(y[8] - Math.Exp(x[8])) / Math.Exp(x[8]) <= RelTol); // x[8] is the float nearest 88.7
        Assert.Equal(float.PositiveInfinity, y[9]);
        Assert.Equal(float.PositiveInfinity, y[10]);
        Assert.Equal(float.PositiveInfinity, y[11]);
        Assert.True(float.IsNaN(y[12]));                       // a NaN score must not turn into a number
    }

    /// <summary>
    /// The attention forward's exp (scores minus the row max, so never above 0) skips the top of
    /// the range: it must give Exp's bits wherever it is defined, x &lt;= 88. Checked at every 61st
    /// float from -inf to 88 (a prime step, so every exponent and many mantissas), and at every
    /// float from -87.4 to -86, where p · 2^n lands below 2^-126 and is rounded to a denormal
    /// (the one place where one factor and two could differ), with -0, -inf and NaN.
    /// </summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void ExpBelow88GivesExpsBits(int width)
    {
        static IEnumerable<uint> Bits()
        {
            uint top = BitConverter.SingleToUInt32Bits(88f);
            for (ulong b = 0; b <= top; b += 61) yield return (uint)b;                         // +0 .. 88
            for (ulong b = 0x80000000; b <= 0xFF800000; b += 61) yield return (uint)b;         // -0 .. -inf
            uint from = BitConverter.SingleToUInt32Bits(-86f), to = BitConverter.SingleToUInt32Bits(-87.4f);
            for (uint b = from; b <= to; b++) yield return b;                                   // every float in [-87.4, -86]
            yield return 0x80000000; yield return 0xFF800000; yield return 0x7FC00000; yield return 0xFFC00001; // -0, -inf, NaNs
        }
        var chunk = new float[width];
        int filled = 0, checkedCount = 0;
        foreach (uint b in Bits())
        {
            chunk[filled++] = BitConverter.UInt32BitsToSingle(b);
            if (filled < width) continue;
            Compare(chunk, width);
            checkedCount += width;
            filled = 0;
        }
        Array.Fill(chunk, 0f, filled, width - filled);
        Compare(chunk, width);
        Assert.True(checkedCount > 40_000_000 / 61);

        static void Compare(float[] x, int width)
        {
            uint[] a = new uint[width], b = new uint[width];
            if (width == 8)
            {
                var v = Vector256.Create(x);
                Simd.Exp(v).AsUInt32().CopyTo(a);
                Simd.ExpBelow88(v).AsUInt32().CopyTo(b);
            }
            else
            {
                var v = Vector512.Create(x);
                Simd.Exp(v).AsUInt32().CopyTo(a);
                Simd.ExpBelow88(v).AsUInt32().CopyTo(b);
            }
            for (int i = 0; i < width; i++)
                if (a[i] != b[i]) Assert.Fail($"exp({x[i]:R}): Exp gives 0x{a[i]:X8}, ExpBelow88 0x{b[i]:X8}");
        }
    }

    private static float[] Eval(float[] x, int width)
    {
        int n = (x.Length + width - 1) / width * width;
        var padded = new float[n];
        x.CopyTo(padded, 0);
        var y = new float[n];
        for (int i = 0; i < n; i += width)
        {
            if (width == 8) Simd.Exp(Vector256.Create(padded, i)).CopyTo(y, i);
            else Simd.Exp(Vector512.Create(padded, i)).CopyTo(y, i);
        }
        return y[..x.Length];
    }
}
