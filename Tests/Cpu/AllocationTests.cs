using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Tests.TestSupport;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// Runs alone, after every parallel test collection: GC.GetTotalAllocatedBytes counts the
/// allocations of all threads, so another test class running at the same time would be measured too.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationCollection
{
    public const string Name = "Allocation (runs alone)";
}

/// <summary>
/// Steady-state CPU kernel calls allocate no managed memory: for each kernel family, on shapes
/// big enough to go parallel on the worker pool, a few warm-up calls, then the bytes allocated
/// (all threads) across a trial of a few further calls, repeated.
///
/// Bound: the smallest object on the 64-bit managed heap is 24 bytes, so a kernel that allocated
/// anything per call would show at least 24 x Calls bytes in every trial; the best trial must stay
/// under that. The best of many short trials, because the test host allocates on its own threads
/// now and then (measured: bursts of 100-400 KB while it starts up, then about 168 bytes every
/// 100-200 ms), which a single long window would count; a short trial usually misses them, while a
/// per-call allocation appears in every trial. The same calls outside the test host measure 0 bytes.
/// The test also checks that the calls really ran on the worker pool, so the parallel path, not
/// only the inline one, is what was measured. With Par.For on Parallel.For instead of the pool,
/// every family here fails at about 1.7 KB per Par.For call.
/// </summary>
[Collection(AllocationCollection.Name)]
public class AllocationTests
{
    private const int Warmup = 5, Calls = 4, Trials = 30, MinObjectBytes = 24;

    public static TheoryData<string> Families => new(
        "matmul 129x65x257", "matmul batched 12x65x65x32 Bᵀ", "matmul 129x257x65 Aᵀ columns",
        "softmax 200x129", "log-softmax 200x129", "cross-entropy 512x100", "cross-entropy 64x1500",
        "layernorm 257x192", "attention bh=12 n=65 d=32 dropout", "adamw 100000", "sgd 100000",
        "gelu 300000", "dropout 300000", "scale 300000", "copy-strided heads 4x65x3x64", "patchify 16x3x32x32 p4",
        "add-broadcast bias 257x192", "add-broadcast elementwise 49344", "add-broadcast per-row 257x192",
        "mul-broadcast bias 257x192", "mul-broadcast elementwise 49344", "mul-broadcast per-row 257x192",
        "sum-mid columns 257x192", "sum-mid rows 257x192", "mul-sum-mid columns 257x192");

    [Theory]
    [MemberData(nameof(Families))]
    public void SteadyStateCallAllocatesNothing(string family)
    {
        var kern = new CpuKernels();
        var call = Build(family, kern, TestRandom.For(family));
        for (int i = 0; i < Warmup; i++) call();

        long jobsBefore = WorkerPool.Shared.JobsRun;
        long best = long.MaxValue;
        for (int t = 0; t < Trials; t++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < Calls; i++) call();
            best = Math.Min(best, GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        long jobs = WorkerPool.Shared.JobsRun - jobsBefore;

        Assert.True(best < (long)MinObjectBytes * Calls,
            $"{family}: {best} bytes allocated over {Calls} calls in the best of {Trials} trials ({(double)best / Calls:F1} per call)");
        if (Par.Workers > 1)
            Assert.True(jobs >= Trials * Calls, $"{family}: only {jobs} of {Trials * Calls} calls ran on the worker pool; the shape is too small to test the parallel path");
    }

    private static Action Build(string family, CpuKernels k, TestRandom r)
    {
        DeviceBuffer Buf(int n, double lo = -1, double hi = 1)
        {
            var b = k.Allocate(n);
            k.Upload(r.Floats(n, lo, hi), b);
            return b;
        }
        DeviceBuffer Labels(int rows, int classes)
        {
            var b = k.Allocate(rows);
            k.Upload(r.Labels(rows, classes), b);
            return b;
        }

        switch (family)
        {
            case "matmul 129x65x257":
            {
                var shape = MatMulShape.Single(129, 65, 257);
                DeviceBuffer a = Buf(129 * 257), b = Buf(257 * 65), c = Buf(129 * 65);
                return () => k.MatMul(a, b, c, shape, 1f, accumulate: false);
            }
            case "matmul batched 12x65x65x32 Bᵀ":
            {
                var shape = MatMulShape.Batched(12, 65, 65, 32, transB: true);
                DeviceBuffer a = Buf(12 * 65 * 32), b = Buf(12 * 65 * 32), c = Buf(12 * 65 * 65);
                return () => k.MatMul(a, b, c, shape, 0.5f, accumulate: false);
            }
            case "matmul 129x257x65 Aᵀ columns":
            {
                var shape = MatMulShape.Single(129, 257, 65, transA: true); // wider than tall: split by columns
                DeviceBuffer a = Buf(65 * 129), b = Buf(65 * 257), c = Buf(129 * 257);
                return () => k.MatMul(a, b, c, shape, 1f, accumulate: true);
            }
            case "softmax 200x129":
            {
                DeviceBuffer x = Buf(200 * 129, -4, 4), y = Buf(200 * 129), dy = Buf(200 * 129), dx = Buf(200 * 129);
                return () => { k.SoftmaxForward(x, y, 200, 129); k.SoftmaxBackward(y, dy, dx, 200, 129); };
            }
            case "log-softmax 200x129":
            {
                DeviceBuffer x = Buf(200 * 129, -4, 4), y = Buf(200 * 129), dy = Buf(200 * 129), dx = Buf(200 * 129);
                return () => { k.LogSoftmaxForward(x, y, 200, 129); k.LogSoftmaxBackward(y, dy, dx, 200, 129); };
            }
            case "cross-entropy 512x100":
            case "cross-entropy 64x1500": // over 1024 classes: the per-thread row instead of stackalloc
            {
                int rows = family.EndsWith("100") ? 512 : 64, classes = family.EndsWith("100") ? 100 : 1500;
                DeviceBuffer x = Buf(rows * classes, -4, 4), l = Labels(rows, classes), loss = Buf(rows), g = Buf(rows), dx = Buf(rows * classes);
                return () => { k.CrossEntropyForward(x, l, loss, rows, classes, 0.1f); k.CrossEntropyBackward(x, l, g, dx, rows, classes, 0.1f); };
            }
            case "layernorm 257x192":
            {
                const int R = 257, C = 192;
                DeviceBuffer x = Buf(R * C), g = Buf(C), b = Buf(C), y = Buf(R * C), mean = Buf(R), rstd = Buf(R);
                DeviceBuffer dy = Buf(R * C), dx = Buf(R * C), dg = Buf(C), db = Buf(C);
                return () =>
                {
                    k.LayerNormForward(x, g, b, y, mean, rstd, R, C, 1e-5f);
                    k.LayerNormBackward(x, g, mean, rstd, dy, dx, dg, db, R, C);
                };
            }
            case "attention bh=12 n=65 d=32 dropout":
            {
                const int BH = 12, N = 65, D = 32, T = BH * N * D;
                DeviceBuffer q = Buf(T), kk = Buf(T), v = Buf(T), o = Buf(T), lse = Buf(BH * N);
                DeviceBuffer dO = Buf(T), dq = Buf(T), dk = Buf(T), dv = Buf(T);
                float scale = 1f / MathF.Sqrt(D);
                return () =>
                {
                    k.AttentionForward(q, kk, v, o, lse, BH, N, D, scale, 0.1f, 7u);
                    k.AttentionBackward(q, kk, v, o, lse, dO, dq, dk, dv, BH, N, D, scale, 0.1f, 7u);
                };
            }
            case "adamw 100000":
            {
                const int N = 100_000;
                DeviceBuffer p = Buf(N), g = Buf(N), m = Buf(N), v = Buf(N, 0, 1), normSq = Buf(1, 0.5, 4);
                var args = new AdamWArgs(1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, 3);
                return () => k.AdamWStep(p, g, m, v, N, args, normSq, 1f);
            }
            case "sgd 100000":
            {
                const int N = 100_000;
                DeviceBuffer p = Buf(N), g = Buf(N), m = Buf(N);
                var args = new SgdArgs(1e-2f, 0.9f, Nesterov: true, 1e-4f, FirstStep: false);
                return () => k.SgdStep(p, g, m, N, args, null, 0f);
            }
            case "gelu 300000":
            {
                const int N = 300_000;
                DeviceBuffer x = Buf(N, -4, 4), y = Buf(N), dy = Buf(N), dx = Buf(N);
                return () => { k.GeluForward(x, y, N); k.GeluBackward(x, dy, dx, N); };
            }
            case "dropout 300000":
            {
                const int N = 300_000;
                DeviceBuffer x = Buf(N), y = Buf(N), dx = Buf(N);
                return () => { k.DropoutForward(x, y, N, 0.1f, 11u); k.DropoutBackward(y, dx, N, 0.1f, 11u); };
            }
            case "scale 300000":
            {
                const int N = 300_000;
                DeviceBuffer x = Buf(N), y = Buf(N);
                return () => k.Scale(x, y, N, 0.75f, accumulate: true);
            }
            case "copy-strided heads 4x65x3x64":
            {
                // [4, 65, 3 heads, 64] -> [4, 3, 65, 64]: the attention head split.
                var layout = new StridedCopy(4, 65, 3, 64, 0, 65 * 192, 192, 64, 0, 3 * 65 * 64, 64, 65 * 64);
                DeviceBuffer x = Buf(4 * 65 * 192), y = Buf(4 * 65 * 192);
                return () => k.CopyStrided(x, y, layout, accumulate: false);
            }
            case "patchify 16x3x32x32 p4":
            {
                const int N = 16 * 3 * 32 * 32;
                DeviceBuffer img = Buf(N), pat = Buf(N);
                return () => { k.PatchifyForward(img, pat, 16, 3, 32, 32, 4); k.PatchifyBackward(pat, img, 16, 3, 32, 32, 4, accumulate: true); };
            }
            case "add-broadcast bias 257x192":
            case "mul-broadcast bias 257x192":
                return Broadcast(family, 1, 257, 192);
            case "add-broadcast elementwise 49344":
            case "mul-broadcast elementwise 49344":
                return Broadcast(family, 257, 1, 192);
            case "add-broadcast per-row 257x192":
            case "mul-broadcast per-row 257x192":
                return Broadcast(family, 257, 192, 1);
            case "sum-mid columns 257x192":
            {
                DeviceBuffer x = Buf(257 * 192), y = Buf(192);
                return () => k.SumMid(x, y, 1, 257, 192, 0.5f, accumulate: true); // a bias gradient
            }
            case "sum-mid rows 257x192":
            {
                DeviceBuffer x = Buf(257 * 192), y = Buf(257);
                return () => k.SumMid(x, y, 257, 192, 1, 1f, accumulate: false);
            }
            case "mul-sum-mid columns 257x192":
            {
                DeviceBuffer x = Buf(257 * 192), w = Buf(257 * 192), y = Buf(192);
                return () => k.MulSumMid(x, w, y, 1, 257, 192, accumulate: true);
            }
            default:
                throw new ArgumentException($"no case for {family}");
        }

        // x: [outer, mid, inner], b: [outer, inner].
        Action Broadcast(string name, int outer, int mid, int inner)
        {
            DeviceBuffer x = Buf(outer * mid * inner), b = Buf(outer * inner), y = Buf(outer * mid * inner);
            return name.StartsWith("add")
                ? () => k.AddBroadcast(x, b, y, outer, mid, inner, -1f)
                : () => k.MulBroadcast(x, b, y, outer, mid, inner, accumulate: false);
        }
    }
}
