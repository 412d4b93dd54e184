using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The one-pass loops of Simd.cs that stand in for two others must give the two others' bits:
/// LayerNorm (plain and fused with the residual add) promises the same bits as before the fusion,
/// so a recipe's run reproduces digit for digit. Both widths, lengths around each vector's edge
/// (the sums take a different vector width, or none, below 16 and 8 elements).
/// </summary>
public class SimdFusedLoopsTests
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var path in new[] { "V256", "V512" })
            foreach (int n in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 128, 192, 203 })
                data.Add(path, n);
        return data;
    }

    private static SimdPath Path(string name) => name == "V512" ? SimdPath.Vector512 : SimdPath.Vector256;

    // Magnitudes spread over 2^-12 .. 2^12, so that summing in another order (another vector
    // width, a lane-by-lane tail) rounds differently: with values of one magnitude the Vector512
    // and Vector256 sums of these lengths came out bit-identical, and a fused loop that took the
    // other width passed (a mutation-testing survivor, docs/testing.md).
    private static float[] Random(Random rnd, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rnd.NextDouble() * 2 - 0.7) * Math.Pow(2, rnd.Next(-12, 13)));
        return x;
    }

    private static void SameBits(float want, float got, string what) =>
        Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got), $"{what}: {got}, want {want}");

    [Theory]
    [MemberData(nameof(Cases))]
    public void AddAndSumIsTheAddThenTheSum(string pathName, int n)
    {
        var path = Path(pathName);
        var rnd = new Random(n + 3);
        for (int trial = 0; trial < 8; trial++)
        {
            float[] a = Random(rnd, n), b = Random(rnd, n), fused = new float[n], twoPass = new float[n];
            float sum = Simd.AddAndSum(path, a, b, fused);
            Simd.AddScaled(path, a, b, twoPass, 1f);
            for (int i = 0; i < n; i++) SameBits(twoPass[i], fused[i], $"y[{i}]");
            SameBits(Simd.Sum(path, twoPass), sum, $"trial {trial}: the sum");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void CenterAndSumSquaresIsTheShiftThenTheDot(string pathName, int n)
    {
        var path = Path(pathName);
        var rnd = new Random(n + 5);
        for (int trial = 0; trial < 8; trial++)
        {
            float[] x = Random(rnd, n), fused = new float[n], twoPass = new float[n];
            float c = 0.3172f;
            float squares = Simd.CenterAndSumSquares(path, x, c, fused);
            Simd.AddConstant(path, x, -c, twoPass);
            for (int i = 0; i < n; i++) SameBits(twoPass[i], fused[i], $"y[{i}]");
            SameBits(Simd.Dot(path, twoPass, twoPass), squares, $"trial {trial}: the sum of squares");
        }
    }
}
