using ViTScratch.Kernels.Cpu;
using ViTScratch.Training.Commands;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The K block (KC) of the AVX-512 GEMM: 256 (today's) against another (128 by default), on one thread, on the
/// per-thread slabs of vit-micro's and vit-tiny's training products at batch 128 (8320 = 128 x 65
/// tokens): the weight gradients (A read transposed, K = 8320, C a slab of M x N/2 or M/2 x N as
/// CpuKernels.MatMul cuts it for two cores) and forward products (M cut to 1040 rows to keep a
/// round short). Why: with NR = 32 a KC of 256 makes the B micro-panel that should stay in L1
/// across the whole ir loop 32 KB, all of a Zen 4's L1 data cache, before the A micro-panel it
/// meets (8 KB). Timed with <see cref="Interleaved"/>; the two sides differ only in rounding (the
/// K blocks are summed into C in a different grouping).
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-kc [KC]   (default 128; AVX-512 hosts)
/// </summary>
public static unsafe class KcInterleaved
{
    public const string Flag = "--interleaved-kc";

    public static void Run(int kc)
    {
        if (SimdPaths.Detected != SimdPath.Vector512)
        {
            Console.WriteLine("--interleaved-kc: this host runs the Vector256 path; the AVX-512 K block cannot be timed here");
            return;
        }
        var now = Gemm.Avx512;
        var other = now with { KC = kc };
        var rnd = new Random(1);
        var rows = new List<Interleaved.Case>();
        // (name, M, N, K, transA, transB)
        (string, int, int, int, bool, bool)[] shapes =
        [
            ("micro fc1 dW slab: 128x8320ᵀ · 8320x128", 128, 128, 8320, true, false),
            ("micro qkv dW slab: 192x8320ᵀ · 8320x128", 192, 128, 8320, true, false),
            ("tiny qkv dW slab: 288x8320ᵀ · 8320x192", 288, 192, 8320, true, false),
            ("micro fc2 fwd: 1040x256 · 256x128ᵀ", 1040, 128, 256, false, true),
            ("tiny qkv fwd: 1040x192 · 192x576ᵀ", 1040, 576, 192, false, true),
            ("tiny fc2 fwd: 1040x768 · 768x192ᵀ", 1040, 192, 768, false, true),
            ("tiny fc1 dX: 1040x768 · 768x192", 1040, 192, 768, false, false),
        ];
        foreach (var (name, m, n, k, ta, tb) in shapes)
        {
            float[] a = Interleaved.PinnedRandom(m * k, rnd), b = Interleaved.PinnedRandom(k * n, rnd), c = new float[m * n];
            long lda = ta ? m : k, ldb = tb ? k : n;
            void Side(Gemm.Blocking bl)
            {
                fixed (float* pa = a, pb = b, pc = c)
                    Gemm.Run(SimdPath.Vector512, bl, m, n, k, pa, lda, ta, pb, ldb, tb, pc, n, 1f, accumulate: false);
            }
            rows.Add(new(name, 2.0 * m * n * k, () => Side(now), () => Side(other)));
        }
        double before = FmaPeak.Measure(allWorkers: false);
        Interleaved.Compare($"AVX-512 GEMM, one thread: KC {now.KC} (now) against KC {kc}", $"KC {now.KC}", $"KC {kc}", rows, rounds: 31);
        // The single-core ceiling the GFLOP/s columns are read against, before and after the rounds.
        Console.WriteLine($"FMA loop on one core: {before:F1} / {FmaPeak.Measure(allWorkers: false):F1} GFLOP/s (before / after)");
    }
}
