using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The CPU matmul on the shapes the default `vit train` runs (vit-micro, Fashion-MNIST, 7x7
/// patches -> 17 tokens, batch 128: 2176 rows, dim 128, MLP 256), where K is small (49..384)
/// except in the weight gradients (K = 2176). Linear layers store W as [out, in], so:
///   forward  y  = x Wᵀ   : [2176, in] x [out, in]ᵀ          (TransB, "NT")
///   backward dx = dy W   : [2176, out] x [out, in]           ("NN", accumulates)
///   backward dW = dyᵀ x  : [2176, out]ᵀ x [2176, in]         (TransA, "TN", K = 2176, accumulates)
/// `Current` is CpuKernels.MatMul; `Before` is a frozen copy of the AVX2 path as it was before the
/// small-K work (rows/columns split across threads, each thread packing its own A and B), kept so
/// old and new run in the same process on the same (noisy, shared) machine.
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*SmallKMatMul*' --job short --inProcess
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class SmallKMatMulBenchmarks
{
    private sealed class Config : ManualConfig
    {
        // Min beside Mean: on this shared machine other tenants only ever add time, so the minimum
        // is the steadier figure for comparing two kernels.
        public Config() => AddColumn(new GflopsColumn(), new OfFmaPeakColumn(), StatisticColumn.Min);
    }

    // Name: layer, pass, M x K x N. Accumulate matches what the engine passes (backward: +=).
    public sealed record Case(string Name, MatMulShape Shape, bool Accumulate) : IHasFlops
    {
        public double FlopsFor(string method) => Shape.Flops;
        public override string ToString() => Name;
    }

    public static IEnumerable<Case> Cases =>
    [
        new("qkv 2176x128x384 NT", MatMulShape.Single(2176, 384, 128, transB: true), false),
        new("out 2176x128x128 NT", MatMulShape.Single(2176, 128, 128, transB: true), false),
        new("mlp2 2176x256x128 NT", MatMulShape.Single(2176, 128, 256, transB: true), false),
        new("patch 2176x49x128 NT", MatMulShape.Single(2176, 128, 49, transB: true), false),
        new("qkv dx 2176x384x128", MatMulShape.Single(2176, 128, 384), true),
        new("mlp1 dx 2176x256x128", MatMulShape.Single(2176, 128, 256), true),
        new("mlp2 dx 2176x128x256", MatMulShape.Single(2176, 256, 128), true),
        new("qkv dW 384x2176x128", MatMulShape.Single(384, 128, 2176, transA: true), true),
        new("out dW 128x2176x128", MatMulShape.Single(128, 128, 2176, transA: true), true),
        new("mlp2 dW 128x2176x256", MatMulShape.Single(128, 256, 2176, transA: true), true),
    ];

    [ParamsSource(nameof(Cases))]
    public Case Shape { get; set; } = null!;

    private readonly CpuKernels _kernels = new() { SimdPath = Kernels.Cpu.SimdPath.Vector256 };
    private DeviceBuffer _a = null!, _b = null!, _c = null!;

    [GlobalSetup]
    public void Setup()
    {
        var s = Shape.Shape;
        var rnd = new Random(1);
        _a = Filled(s.Batch * s.M * s.K, rnd);
        _b = Filled(s.Batch * s.K * s.N, rnd);
        _c = Filled(s.Batch * s.M * s.N, rnd);
        // Grow the per-thread packing buffers of both implementations before measuring.
        _kernels.MatMul(_a, _b, _c, s, 1f, false);
        Before.MatMul(_a, _b, _c, s, 1f, false);
    }

    [Benchmark]
    public void Current() => _kernels.MatMul(_a, _b, _c, Shape.Shape, 1f, Shape.Accumulate);

    [Benchmark(Baseline = true)]
    public void Previous() => Before.MatMul(_a, _b, _c, Shape.Shape, 1f, Shape.Accumulate);

    private DeviceBuffer Filled(int n, Random rnd)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        var buf = _kernels.Allocate(n);
        _kernels.Upload(x, buf);
        return buf;
    }

    /// <summary>
    /// Frozen copy of the AVX2 matmul before the small-K changes (CpuKernels.MatMul.cs, Gemm.cs,
    /// Packing.cs, MicroKernel256.cs at commit d21560a), trimmed to the 6 x 16 path. Not used by
    /// anything but this benchmark.
    /// </summary>
    internal static unsafe class Before
    {
        private const int MR = 6, NR = 16, KC = 256, MC = 120, NC = 2048;

        private readonly record struct Job(CpuBuffer A, CpuBuffer B, CpuBuffer C, MatMulShape Shape,
            float Alpha, bool Accumulate, int Splits, bool ByRows);

        public static void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate)
        {
            var sh = shape;
            var As = CpuBuffer.Of(a); var Bs = CpuBuffer.Of(b); var Cs = CpuBuffer.Of(c);
            int workers = Par.Workers;
            if (workers <= 1 || sh.Flops < 1 << 20)
            {
                for (int bt = 0; bt < sh.Batch; bt++) Slab(As, Bs, Cs, sh, bt, 0, sh.M, 0, sh.N, alpha, accumulate);
                return;
            }
            int splits = sh.Batch >= workers ? 1 : (workers + sh.Batch - 1) / sh.Batch;
            int tasks = sh.Batch * splits;
            var job = new Job(As, Bs, Cs, sh, alpha, accumulate, splits, sh.M >= sh.N);
            Par.For(tasks, (long)Math.Ceiling(sh.Flops / tasks), job, static (in Job j, int t0, int t1) =>
            {
                var sh = j.Shape;
                for (int t = t0; t < t1; t++)
                {
                    int bt = t / j.Splits, piece = t % j.Splits;
                    if (j.Splits == 1) Slab(j.A, j.B, j.C, sh, bt, 0, sh.M, 0, sh.N, j.Alpha, j.Accumulate);
                    else if (j.ByRows) Slab(j.A, j.B, j.C, sh, bt, Cut(sh.M, piece, j.Splits, MR), Cut(sh.M, piece + 1, j.Splits, MR), 0, sh.N, j.Alpha, j.Accumulate);
                    else Slab(j.A, j.B, j.C, sh, bt, 0, sh.M, Cut(sh.N, piece, j.Splits, NR), Cut(sh.N, piece + 1, j.Splits, NR), j.Alpha, j.Accumulate);
                }
            });
        }

        private static int Cut(int length, int piece, int parts, int grain)
        {
            if (piece >= parts) return length;
            long x = (long)length * piece / parts;
            return (int)Math.Min(length, (x + grain / 2) / grain * grain);
        }

        private static void Slab(CpuBuffer A, CpuBuffer B, CpuBuffer C, MatMulShape sh,
            int bt, int i0, int i1, int j0, int j1, float alpha, bool accumulate)
        {
            if (i1 <= i0 || j1 <= j0) return;
            long lda = sh.TransA ? sh.M : sh.K;
            long ldb = sh.TransB ? sh.K : sh.N;
            long aOff = bt * sh.StrideA + (sh.TransA ? i0 : i0 * lda);
            long bOff = bt * sh.StrideB + (sh.TransB ? j0 * ldb : j0);
            long cOff = bt * sh.StrideC + (long)i0 * sh.N + j0;
            fixed (float* pa = A.Array, pb = B.Array, pc = C.Array)
                Run(i1 - i0, j1 - j0, sh.K, pa + A.Offset + aOff, lda, sh.TransA, pb + B.Offset + bOff, ldb, sh.TransB,
                    pc + C.Offset + cOff, sh.N, alpha, accumulate);
        }

        [ThreadStatic] private static float[]? _scratch;

        private static void Run(int m, int n, int k, float* a, long lda, bool transA, float* b, long ldb, bool transB,
            float* c, long ldc, float alpha, bool accumulate)
        {
            if (m <= 0 || n <= 0 || k <= 0) return; // the benchmark never has k = 0
            _scratch ??= GC.AllocateUninitializedArray<float>(MC * KC + KC * NC + MR * NR + 48, pinned: true);
            float* p = (float*)Unsafe.AsPointer(ref _scratch[0]);
            p = (float*)(((nint)p + 63) & ~(nint)63);
            float* sA = p, sB = p + MC * KC, tile = sB + KC * NC;
            for (int jc = 0; jc < n; jc += NC)
            {
                int nc = Math.Min(NC, n - jc);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    bool acc = accumulate || pc > 0;
                    PackB(b, ldb, transB, pc, kc, jc, nc, sB);
                    for (int ic = 0; ic < m; ic += MC)
                    {
                        int mc = Math.Min(MC, m - ic);
                        PackA(a, lda, transA, ic, mc, pc, kc, sA);
                        Macro(mc, nc, kc, sA, sB, c + ic * ldc + jc, ldc, alpha, acc, tile);
                    }
                }
            }
        }

        private static void Macro(int mc, int nc, int kc, float* pa, float* pb, float* c, long ldc, float alpha, bool accumulate, float* tile)
        {
            for (int jr = 0; jr < nc; jr += NR)
            {
                int nr = Math.Min(NR, nc - jr);
                bool half = nr <= NR / 2;
                float* bp = pb + (long)jr * kc;
                for (int ir = 0; ir < mc; ir += MR)
                {
                    int mr = Math.Min(MR, mc - ir);
                    float* ap = pa + (long)ir * kc;
                    float* cp = c + ir * ldc + jr;
                    if (mr == MR && (nr == NR || nr == NR / 2))
                    {
                        if (half) Half(kc, ap, bp, cp, ldc, alpha, accumulate); else Full(kc, ap, bp, cp, ldc, alpha, accumulate);
                    }
                    else
                    {
                        if (half) Half(kc, ap, bp, tile, NR, alpha, false); else Full(kc, ap, bp, tile, NR, alpha, false);
                        for (int i = 0; i < mr; i++)
                        {
                            float* dst = cp + i * ldc, src = tile + i * NR;
                            if (accumulate) for (int j = 0; j < nr; j++) dst[j] += src[j];
                            else for (int j = 0; j < nr; j++) dst[j] = src[j];
                        }
                    }
                }
            }
        }

        private static void PackA(float* a, long lda, bool transA, int i0, int mc, int p0, int kc, float* dst)
        {
            for (int ir = 0; ir < mc; ir += MR)
            {
                int rows = Math.Min(MR, mc - ir);
                if (transA)
                {
                    float* src = a + (long)p0 * lda + i0 + ir;
                    for (int p = 0; p < kc; p++, src += lda, dst += MR)
                    {
                        int r = 0;
                        for (; r < rows; r++) dst[r] = src[r];
                        for (; r < MR; r++) dst[r] = 0f;
                    }
                }
                else
                {
                    float* src = a + (long)(i0 + ir) * lda + p0;
                    for (int r = 0; r < MR; r++)
                    {
                        float* d = dst + r;
                        if (r < rows) { float* s = src + r * lda; for (int q = 0; q < kc; q++) d[q * MR] = s[q]; }
                        else for (int q = 0; q < kc; q++) d[q * MR] = 0f;
                    }
                    dst += (long)kc * MR;
                }
            }
        }

        private static void PackB(float* b, long ldb, bool transB, int p0, int kc, int j0, int nc, float* dst)
        {
            for (int jr = 0; jr < nc; jr += NR)
            {
                int cols = Math.Min(NR, nc - jr);
                if (!transB)
                {
                    float* src = b + (long)p0 * ldb + j0 + jr;
                    for (int q = 0; q < kc; q++, src += ldb, dst += NR)
                    {
                        if (cols == NR) { Vector256.Store(Vector256.Load(src), dst); Vector256.Store(Vector256.Load(src + 8), dst + 8); }
                        else { int j = 0; for (; j < cols; j++) dst[j] = src[j]; for (; j < NR; j++) dst[j] = 0f; }
                    }
                }
                else
                {
                    float* src = b + (long)(j0 + jr) * ldb + p0;
                    for (int j = 0; j < NR; j++)
                    {
                        float* d = dst + j;
                        if (j < cols) { float* s = src + j * ldb; for (int q = 0; q < kc; q++) d[q * NR] = s[q]; }
                        else for (int q = 0; q < kc; q++) d[q * NR] = 0f;
                    }
                    dst += (long)kc * NR;
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Full(int kc, float* a, float* b, float* c, long ldc, float alpha, bool accumulate)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b);
                var b1 = Vector256.Load(b + 8);
                var av = Vector256.Create(a[0]);
                c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                av = Vector256.Create(a[1]);
                c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                av = Vector256.Create(a[2]);
                c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                av = Vector256.Create(a[3]);
                c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                av = Vector256.Create(a[4]);
                c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                av = Vector256.Create(a[5]);
                c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
                a += MR;
                b += NR;
            }
            var al = Vector256.Create(alpha);
            Store(c, c00, al, accumulate); Store(c + 8, c01, al, accumulate); c += ldc;
            Store(c, c10, al, accumulate); Store(c + 8, c11, al, accumulate); c += ldc;
            Store(c, c20, al, accumulate); Store(c + 8, c21, al, accumulate); c += ldc;
            Store(c, c30, al, accumulate); Store(c + 8, c31, al, accumulate); c += ldc;
            Store(c, c40, al, accumulate); Store(c + 8, c41, al, accumulate); c += ldc;
            Store(c, c50, al, accumulate); Store(c + 8, c51, al, accumulate);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Half(int kc, float* a, float* b, float* c, long ldc, float alpha, bool accumulate)
        {
            Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b);
                c0 = Vector256.FusedMultiplyAdd(Vector256.Create(a[0]), b0, c0);
                c1 = Vector256.FusedMultiplyAdd(Vector256.Create(a[1]), b0, c1);
                c2 = Vector256.FusedMultiplyAdd(Vector256.Create(a[2]), b0, c2);
                c3 = Vector256.FusedMultiplyAdd(Vector256.Create(a[3]), b0, c3);
                c4 = Vector256.FusedMultiplyAdd(Vector256.Create(a[4]), b0, c4);
                c5 = Vector256.FusedMultiplyAdd(Vector256.Create(a[5]), b0, c5);
                a += MR;
                b += NR;
            }
            var al = Vector256.Create(alpha);
            Store(c, c0, al, accumulate); c += ldc;
            Store(c, c1, al, accumulate); c += ldc;
            Store(c, c2, al, accumulate); c += ldc;
            Store(c, c3, al, accumulate); c += ldc;
            Store(c, c4, al, accumulate); c += ldc;
            Store(c, c5, al, accumulate);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Store(float* c, Vector256<float> acc, Vector256<float> alpha, bool accumulate)
        {
            var r = accumulate ? Vector256.FusedMultiplyAdd(alpha, acc, Vector256.Load(c)) : alpha * acc;
            Vector256.Store(r, c);
        }
    }
}
