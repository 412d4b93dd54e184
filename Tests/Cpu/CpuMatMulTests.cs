using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The packed, blocked CPU matmul against a float64 triple loop, on both micro-kernel paths
/// (Vector512 runs emulated, slowly but exactly, where the CPU lacks AVX-512).
///
/// Tolerance. Each output is a float32 sum of K products. The kernel runs one FMA chain per K
/// block of at most KC terms (the path blocking's KC: 384 on the AVX2 path, 256 on AVX-512; one rounding per
/// term), adds each block into C (one rounding per block), and rounds once more for alpha and once
/// for `+=`. Its error is therefore bounded, to first order, by
/// (min(K, KC) + ceil(K / KC) + 2) u (|alpha| sum_k |a_ik b_kj| + |C0_ij|),
/// u = 2^-24; the test allows +2 terms of slack for the reference's own double rounding. This is
/// a worst-case bound, tight enough to catch a single dropped or doubled term for every K tested
/// (one term is ~1/K of the sum; the bound is below 1/K for K up to ~4000).
/// </summary>
public class CpuMatMulTests
{
    private const double U = 1.0 / (1 << 24);

    public static TheoryData<string, int, int, int, int, int> Shapes()
    {
        var data = new TheoryData<string, int, int, int, int, int>();
        string[] paths = ["V256", "V512"];
        // batch, M, N, K; ragged against 6x16 and 8x32 tiles, MC = 120/128 rows, NC = 2048 columns and
        // KC = 256 (AVX-512) or 384 (AVX2): K one below, at and above each K block, and over two and
        // three blocks.
        (int, int, int, int)[] shapes =
        [
            (1, 1, 1, 1), (1, 7, 5, 3), (1, 1, 65, 64), (1, 65, 1, 64), (1, 6, 16, 256), (1, 8, 32, 257),
            (1, 65, 65, 64), (1, 129, 33, 257), (1, 121, 17, 513), (3, 7, 129, 65), (1, 65, 129, 257),
            (1, 130, 48, 300), (2, 66, 40, 255), (1, 6, 16, 384), (1, 13, 40, 385), (1, 20, 33, 769),
            (1, 127, 18, 383),
            (1, 4, 24, 7), (1, 9, 8, 31), (1, 14, 16, 100), (1, 123, 47, 129), (2, 5, 2049, 3),
        ];
        foreach (var path in paths)
            foreach (var (b, m, n, k) in shapes)
                for (int t = 0; t < 4; t++) data.Add(path, t, b, m, n, k);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesFloat64Reference(string path, int transposes, int batch, int m, int n, int k)
    {
        bool ta = (transposes & 1) != 0, tb = (transposes & 2) != 0;
        var shape = MatMulShape.Batched(batch, m, n, k, ta, tb);
        Check(Kernels(path), shape, alpha: 1f, accumulate: false, seed: 17 * m + n + k + transposes);
        Check(Kernels(path), shape, alpha: -0.37f, accumulate: true, seed: 5 * m + n + 3 * k + transposes);
    }

    [Theory]
    [InlineData("V256", 0L, -1L)] // A shared across the batch (stride 0)
    [InlineData("V256", -1L, 0L)] // B shared across the batch, the linear-layer case
    [InlineData("V512", 0L, -1L)]
    [InlineData("V512", -1L, 0L)]
    public void BatchStrideZeroSharesAnOperand(string path, long strideA, long strideB)
    {
        const int batch = 5, m = 13, n = 70, k = 33;
        for (int t = 0; t < 4; t++)
        {
            bool ta = (t & 1) != 0, tb = (t & 2) != 0;
            var shape = new MatMulShape(batch, m, n, k, ta, tb,
                strideA < 0 ? (long)m * k : 0, strideB < 0 ? (long)k * n : 0, (long)m * n);
            Check(Kernels(path), shape, 1.5f, accumulate: t % 2 == 1, seed: 100 + t);
        }
    }

    [Theory]
    [InlineData(1, 576, 192, 600)]  // one product split by rows across cores (TransA weight gradient shape, smaller K)
    [InlineData(1, 40, 900, 100)]   // wider than tall: split by columns
    [InlineData(64, 65, 65, 64)]    // batch >= cores: whole batches per core (attention scores)
    public void ParallelSplitsMatchReference(int batch, int m, int n, int k)
    {
        for (int t = 0; t < 4; t++)
            Check(Kernels("V256"), MatMulShape.Batched(batch, m, n, k, (t & 1) != 0, (t & 2) != 0), 1f, accumulate: t >= 2, seed: 7 + t);
    }

    [Fact]
    public void EmptyKWritesZerosOrLeavesCUnchanged()
    {
        var kern = new CpuKernels();
        var a = kern.Allocate(4); var b = kern.Allocate(4); var c = kern.Allocate(6);
        kern.Upload([1, 2, 3, 4, 5, 6], c);
        kern.MatMul(a, b, c, MatMulShape.Single(2, 3, 0), 1f, accumulate: true);
        var got = new float[6]; kern.Download(c, got);
        Assert.Equal([1, 2, 3, 4, 5, 6], got);
        kern.MatMul(a, b, c, MatMulShape.Single(2, 3, 0), 1f, accumulate: false);
        kern.Download(c, got);
        Assert.All(got, x => Assert.Equal(0f, x));
    }

    // Gemm.Run with another K block (the harness Benchmarks --interleaved-kc times these): the same
    // product within the bound of that block, and a blocking of the other path's tile refused.
    [Theory]
    [InlineData("V256", 128)]
    [InlineData("V512", 128)]
    [InlineData("V512", 384)]
    public unsafe void AnotherKBlockStaysWithinItsBound(string path, int kc)
    {
        const int m = 37, n = 45, k = 700; // ragged against both tiles; 3-6 K blocks
        var p = path == "V512" ? SimdPath.Vector512 : SimdPath.Vector256;
        var bl = (p == SimdPath.Vector512 ? Gemm.Avx512 : Gemm.Avx2) with { KC = kc };
        var rnd = new Random(kc + m);
        float[] a = Random(rnd, (long)k * m), b = Random(rnd, (long)k * n), c = new float[m * n];
        fixed (float* pa = a, pb = b, pc = c)
            Gemm.Run(p, bl, m, n, k, pa, m, true, pb, n, false, pc, n, 1f, accumulate: false); // Aᵀ B, the weight-gradient form
        double factor = (kc + (k + kc - 1) / kc + 4) * U;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, mag = 0;
                for (int q = 0; q < k; q++) { double t = (double)a[q * m + i] * b[q * n + j]; sum += t; mag += Math.Abs(t); }
                Assert.True(Math.Abs(c[i * n + j] - sum) <= factor * mag, $"KC {kc} {path}: C[{i},{j}] = {c[i * n + j]}, want {sum}");
            }
    }

    [Fact]
    public unsafe void ABlockingOfTheOtherPathIsRefused()
    {
        float[] x = new float[64 * 64];
        fixed (float* px = x)
        {
            float* p = px;
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(SimdPath.Vector256, Gemm.Avx512, 8, 8, 8, p, 8, false, p, 8, false, p + 64, 8, 1f, false));
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(SimdPath.Vector512, Gemm.Avx512 with { KC = 512 }, 8, 8, 8, p, 8, false, p, 8, false, p + 64, 8, 1f, false));
        }
    }

    // The AVX-512 path reads a transposed A in place (Gemm.Avx512.TransposedAInPlace) and packs it
    // otherwise: the same micro-kernel arithmetic on the same values in the same order, so the same
    // bits, with ragged rows (the last group packed), ragged and half-width columns (the edge tile),
    // several K blocks and `+=` (bias included). AVX2 has no such kernel and refuses the blocking.
    [Theory]
    [InlineData(8, 32, 256, false)]
    [InlineData(129, 45, 700, false)]
    [InlineData(37, 16, 513, true)]
    [InlineData(264, 96, 300, true)]
    public unsafe void ATransposedAReadInPlaceGivesThePackedBits(int m, int n, int k, bool accumulate)
    {
        var rnd = new Random(m + n + k);
        float[] a = Random(rnd, (long)k * m), b = Random(rnd, (long)k * n), bias = Random(rnd, n), start = Random(rnd, (long)m * n);
        float[] inPlace = (float[])start.Clone(), packed = (float[])start.Clone();
        Assert.True(Gemm.Avx512.TransposedAInPlace);
        fixed (float* pa = a, pb = b, pbias = bias, pi = inPlace, pp = packed)
        {
            Gemm.Run(SimdPath.Vector512, Gemm.Avx512, m, n, k, pa, m, true, pb, n, false, pi, n, 0.7f, accumulate, pbias);
            Gemm.Run(SimdPath.Vector512, Gemm.Avx512 with { TransposedAInPlace = false }, m, n, k, pa, m, true, pb, n, false, pp, n, 0.7f, accumulate, pbias);
        }
        AssertSameBits(inPlace, packed, n);
        Assert.NotEqual(start, inPlace);
        float[] x = new float[64 * 64];
        fixed (float* px = x)
        {
            float* q = px;
            var refused = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(SimdPath.Vector256, Gemm.Avx2 with { TransposedAInPlace = true }, 8, 8, 8, q, 8, true, q, 8, false, q + 64, 8, 1f, false));
            Assert.Contains("only the Vector512 micro-kernel reads a transposed A in place", refused.Message);
        }
    }

    private static void AssertSameBits(float[] inPlace, float[] packed, int n)
    {
        for (int i = 0; i < inPlace.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(inPlace[i]) == BitConverter.SingleToInt32Bits(packed[i]),
                $"C[{i / n},{i % n}]: {inPlace[i]} in place, {packed[i]} packed");
    }

    // The AVX-512 path reads a row-major A in place too (Gemm.Avx512.RowsAInPlace, the forward and
    // input-gradient products); with the switch off it packs A into 8-row panels. The same bits,
    // over ragged rows, ragged and half-width columns, several K blocks, B either way, `+=` and bias.
    [Theory]
    [InlineData(8, 32, 256, false, false)]
    [InlineData(129, 45, 700, false, true)]
    [InlineData(37, 16, 513, true, true)]
    [InlineData(264, 96, 300, true, false)]
    public unsafe void ARowMajorAReadInPlaceGivesThePackedBits(int m, int n, int k, bool accumulate, bool transB)
    {
        var rnd = new Random(m + n + k + 1);
        float[] a = Random(rnd, (long)m * k), b = Random(rnd, (long)k * n), bias = Random(rnd, n), start = Random(rnd, (long)m * n);
        float[] inPlace = (float[])start.Clone(), packed = (float[])start.Clone();
        Assert.True(Gemm.Avx512.RowsAInPlace);
        long ldb = transB ? k : n;
        fixed (float* pa = a, pb = b, pbias = bias, pi = inPlace, pp = packed)
        {
            Gemm.Run(SimdPath.Vector512, Gemm.Avx512, m, n, k, pa, k, false, pb, ldb, transB, pi, n, 0.7f, accumulate, pbias);
            Gemm.Run(SimdPath.Vector512, Gemm.Avx512 with { RowsAInPlace = false }, m, n, k, pa, k, false, pb, ldb, transB, pp, n, 0.7f, accumulate, pbias);
        }
        AssertSameBits(inPlace, packed, n);
        Assert.NotEqual(start, inPlace);
    }

    // The refusals name what is wrong: the tile against the micro-kernel's, the largest blocks the
    // pack buffers hold (MC: the larger of the two paths' 120 and 128).
    [Fact]
    public unsafe void ARefusedBlockingSaysWhy()
    {
        float[] x = new float[64 * 64];
        fixed (float* p = x)
        {
            float* q = p;
            var tile = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(SimdPath.Vector256, Gemm.Avx512, 8, 8, 8, q, 8, false, q, 8, false, q + 64, 8, 1f, false));
            Assert.Contains("has a 8 x 32 tile; the Vector256 micro-kernel's is (6, 16)", tile.Message);
            var big = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(SimdPath.Vector512, Gemm.Avx512 with { MC = 129 }, 8, 8, 8, q, 8, false, q, 8, false, q + 64, 8, 1f, false));
            Assert.Contains("exceeds the pack buffers (KC 384, MC 128, NC 2048)", big.Message);
        }
    }

    // The per-thread pack buffers: A, B and the edge tile 64-byte aligned, in that order, inside
    // the storage, without overlap, each as large as the largest blocking the checks above let
    // through needs (A: the larger MC x KC 384; B: KC 384 x the larger NC; the tile: the larger
    // MR x NR). A region cut short or shifted writes past its neighbour or the array, silently.
    [Fact]
    public unsafe void PackBuffersFitTheirStorage()
    {
        var s = Gemm.PackBuffers.For(Gemm.Avx512);
        const int maxKc = 384;
        long aNeed = (long)Math.Max(Gemm.Avx2.MC, Gemm.Avx512.MC) * maxKc;
        long bNeed = (long)maxKc * Math.Max(Gemm.Avx2.NC, Gemm.Avx512.NC);
        long tileNeed = Math.Max(Gemm.Avx2.MR * Gemm.Avx2.NR, Gemm.Avx512.MR * Gemm.Avx512.NR);
        foreach (var region in new[] { (nint)s.A, (nint)s.B, (nint)s.Tile }) Assert.Equal(0, region % 64);
        Assert.True(s.A >= s.StorageStart, "A starts before the storage");
        Assert.True(s.B - s.A >= aNeed, $"A holds {s.B - s.A} floats, needs {aNeed}");
        Assert.True(s.Tile - s.B >= bNeed, $"B holds {s.Tile - s.B} floats, needs {bNeed}");
        Assert.True(s.StorageEnd - s.Tile >= tileNeed, $"the tile holds {s.StorageEnd - s.Tile} floats, needs {tileNeed}");
        Assert.Same(s, Gemm.PackBuffers.For(Gemm.Avx2)); // one set per thread, for both blockings
    }

    // Empty products: no rows, no columns or no batches leave C as it was; K = 0 is an empty sum,
    // so `=` writes zeros, `+=` adds nothing, and a bias still lands on every row.
    [Theory]
    [InlineData("V256")]
    [InlineData("V512")]
    public unsafe void EmptyProductsAndEmptySums(string path)
    {
        var kern = Kernels(path);
        float[] start = [1, 2, 3, 4, 5, 6];
        foreach (var shape in new[] { MatMulShape.Single(0, 3, 4), MatMulShape.Single(2, 0, 4), new MatMulShape(0, 2, 3, 4, false, false, 8, 12, 6) })
        {
            var c = Upload(kern, start, 0);
            kern.MatMul(Upload(kern, new float[8], 0), Upload(kern, new float[12], 0), c, shape, 1f, accumulate: false);
            var got = new float[6];
            kern.Download(c, got);
            Assert.Equal(start, got);
        }
        var p = path == "V512" ? SimdPath.Vector512 : SimdPath.Vector256;
        float[] bias = [10, 20, 30];
        fixed (float* pb = bias)
            foreach (bool accumulate in new[] { false, true })
                foreach (bool withBias in new[] { false, true })
                {
                    float[] cs = (float[])start.Clone();
                    fixed (float* pc = cs)
                        Gemm.Run(p, 2, 3, 0, null, 0, false, null, 0, false, pc, 3, 1f, accumulate, withBias ? pb : null);
                    for (int i = 0; i < 6; i++)
                        Assert.Equal((accumulate ? start[i] : 0) + (withBias ? bias[i % 3] : 0), cs[i]);
                }
    }

    internal static CpuKernels Kernels(string path) =>
        new() { SimdPath = path == "V512" ? SimdPath.Vector512 : SimdPath.Vector256 };

    private static void Check(CpuKernels kern, MatMulShape s, float alpha, bool accumulate, int seed)
    {
        var rnd = new Random(seed);
        long lenA = s.StrideA == 0 ? (long)s.M * s.K : s.StrideA * s.Batch;
        long lenB = s.StrideB == 0 ? (long)s.K * s.N : s.StrideB * s.Batch;
        long lenC = s.StrideC * s.Batch;
        float[] A = Random(rnd, lenA), B = Random(rnd, lenB), C0 = Random(rnd, lenC);
        // Run on slices at an odd offset so nothing relies on the start of the array being aligned.
        var bufA = Upload(kern, A, 3); var bufB = Upload(kern, B, 5); var bufC = Upload(kern, C0, 1);
        kern.MatMul(bufA, bufB, bufC, s, alpha, accumulate);
        var got = new float[lenC];
        kern.Download(bufC, got);

        int block = (kern.SimdPath == SimdPath.Vector512 ? Gemm.Avx512 : Gemm.Avx2).KC;
        int kc = Math.Min(s.K, block), blocks = (s.K + block - 1) / block;
        double factor = (kc + blocks + 4) * U;
        for (int bt = 0; bt < s.Batch; bt++)
            for (int i = 0; i < s.M; i++)
                for (int j = 0; j < s.N; j++)
                {
                    double sum = 0, mag = 0;
                    for (int p = 0; p < s.K; p++)
                    {
                        double av = s.TransA ? A[bt * s.StrideA + (long)p * s.M + i] : A[bt * s.StrideA + (long)i * s.K + p];
                        double bv = s.TransB ? B[bt * s.StrideB + (long)j * s.K + p] : B[bt * s.StrideB + (long)p * s.N + j];
                        sum += av * bv;
                        mag += Math.Abs(av * bv);
                    }
                    long ci = bt * s.StrideC + (long)i * s.N + j;
                    double c0 = accumulate ? C0[ci] : 0;
                    double want = c0 + alpha * sum;
                    double tol = factor * (Math.Abs(alpha) * mag + Math.Abs(c0));
                    double err = Math.Abs(got[ci] - want);
                    if (!(err <= tol))
                        Assert.Fail($"{s} alpha={alpha} acc={accumulate}: C[{bt},{i},{j}] = {got[ci]}, want {want} (|err| {err:E3} > tol {tol:E3})");
                }
    }

    private static float[] Random(Random rnd, long n)
    {
        var x = new float[n];
        for (long i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() * 2 - 1);
        return x;
    }

    private static DeviceBuffer Upload(CpuKernels kern, float[] data, int offset)
    {
        var whole = kern.Allocate(data.Length + offset + 7);
        var view = kern.Slice(whole, offset, data.Length);
        kern.Upload(data, view);
        return view;
    }
}
