using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The fused attention's unpacked small matmul (SmallGemm) against a float64 triple loop, on both
/// SIMD paths (Vector512 emulated where the CPU lacks it): every row count from 1 to 13 and the
/// ViT's 17 and 65 (each remainder after the 4-row blocks), column
/// counts that end in each of the 3-, 2- and 1-vector loops and in scalar columns (32, 56 and 80:
/// the Vector256 split that trades a last 3 + 1 vectors for 2 + 2), A read
/// row-major and transposed (the Pᵀ dO and dSᵀ Q products), `=` and `+=`.
///
/// Tolerance: one FMA chain of k terms per element, one rounding for alpha, one for `+=`:
/// (k + 2) u (|alpha| sum_p |a b| + |C0|) with u = 2^-24, plus 2 terms of slack.
/// </summary>
public unsafe class SmallGemmTests
{
    private const double U = 1.0 / (1 << 24);

    public static TheoryData<string, int, int, int> Shapes()
    {
        var data = new TheoryData<string, int, int, int>();
        int[] rows = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 65];
        (int n, int k)[] cols = [(72, 64), (16, 9), (32, 33), (64, 65), (13, 7), (40, 1), (56, 5), (80, 3)];
        foreach (var path in new[] { "V256", "V512" })
            foreach (int m in rows)
                foreach (var (n, k) in cols)
                    data.Add(path, m, n, k);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesFloat64Reference(string pathName, int m, int n, int k)
    {
        var path = pathName == "V512" ? SimdPath.Vector512 : SimdPath.Vector256;
        var rnd = new Random(m * 1000 + n * 10 + k);
        foreach (bool transposedA in new[] { false, true })
            foreach (bool accumulate in new[] { false, true })
            {
                // A(i, p) = a[i ars + p acs]: stored [m, k] (acs 1) or [k, m] (ars 1), rows padded apart.
                long lda = (transposedA ? m : k) + 3, ars = transposedA ? 1 : lda, acs = transposedA ? lda : 1;
                long ldb = n + 5, ldc = n + 2;
                var a = Random(rnd, (transposedA ? k : m) * lda);
                var b = Random(rnd, k * ldb);
                // Three guard rows after C's m rows: a kernel that runs a row too far writes there.
                const int Guard = 3;
                var c0 = Random(rnd, (m + Guard) * ldc);
                var c = (float[])c0.Clone();
                float alpha = accumulate ? -0.37f : 1.3f;
                fixed (float* pa = a, pb = b, pc = c) SmallGemm.Run(path, m, n, k, pa, ars, acs, pb, ldb, pc, ldc, alpha, accumulate);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double sum = 0, mag = 0;
                        for (int p = 0; p < k; p++)
                        {
                            double prod = (double)a[i * ars + p * acs] * b[p * ldb + j];
                            sum += prod;
                            mag += Math.Abs(prod);
                        }
                        double init = accumulate ? c0[i * ldc + j] : 0, want = init + alpha * sum;
                        double tol = (k + 4) * U * (Math.Abs(alpha) * mag + Math.Abs(init));
                        double err = Math.Abs(c[i * ldc + j] - want);
                        if (!(err <= tol))
                            Assert.Fail($"{pathName} m={m} n={n} k={k} transposedA={transposedA} acc={accumulate}: C[{i},{j}] = {c[i * ldc + j]}, want {want} (|err| {err:E3} > {tol:E3})");
                    }
                // Columns past n, the padding between rows and the rows past m are never written.
                for (int i = 0; i < m; i++)
                    for (long j = n; j < ldc; j++)
                        Assert.Equal(c0[i * ldc + j], c[i * ldc + j]);
                for (long e = (long)m * ldc; e < c0.Length; e++)
                    if (c0[e] != c[e])
                        Assert.Fail($"{pathName} m={m} n={n} k={k} transposedA={transposedA}: wrote past the last row, at row {e / ldc}, column {e % ldc}");
            }
    }

    private static float[] Random(Random rnd, long n)
    {
        var x = new float[n];
        for (long i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() * 2 - 1);
        return x;
    }
}
