using ViTScratch.Kernels.Cpu;
using ViTScratch.Training.Commands;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The forward and input-gradient products on AVX-512 (C = A op(B), A [M, K] row-major, M = batch
/// x tokens = 8320 at batch 128): 8 rows of A read in place by the micro-kernel
/// (MicroKernel512.FullRowsA, Gemm.Blocking.RowsAInPlace) against A packed into 8-row panels first,
/// on the products of vit-micro and vit-tiny (Linear: B = the weight [N, K], read transposed, with
/// its bias; input gradient: B = the weight [K, N]). Each product runs as CpuKernels.MatMul cuts
/// it, slabs of rows, one per core; timed on one thread (one slab) and on all cores. Both sides
/// give the same bits (CpuMatMulTests.ARowMajorAReadInPlaceGivesThePackedBits).
/// Timed with <see cref="Interleaved"/>.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-rows-inplace   (AVX-512 hosts)
/// </summary>
public static unsafe class RowsInPlaceInterleaved
{
    public const string Flag = "--interleaved-rows-inplace";

    private readonly record struct Product(nint A, nint B, nint C, nint Bias, int M, int N, int K, bool TransB, int Slabs, Gemm.Blocking Blocking);

    public static void Run()
    {
        if (SimdPaths.Detected != SimdPath.Vector512)
        {
            Console.WriteLine($"{Flag}: this host runs the Vector256 path, which always reads a row-major A in place; nothing to time");
            return;
        }
        var packed = Gemm.Avx512 with { RowsAInPlace = false };
        var inPlace = Gemm.Avx512 with { RowsAInPlace = true };
        // (name, K, N, B transposed with a bias): M = 8320 throughout.
        (string, int, int, bool)[] shapes =
        [
            ("micro qkv: 8320x128 · 128x384ᵀ", 128, 384, true),
            ("micro fc1: 8320x128 · 128x256ᵀ + bias", 128, 256, true),
            ("micro fc2: 8320x256 · 256x128ᵀ + bias", 256, 128, true),
            ("micro qkv dx: 8320x384 · 384x128", 384, 128, false),
            ("micro fc2 dx: 8320x128 · 128x256", 128, 256, false),
            ("tiny qkv: 8320x192 · 192x576ᵀ", 192, 576, true),
            ("tiny fc1: 8320x192 · 192x384ᵀ + bias", 192, 384, true),
            ("tiny fc2: 8320x384 · 384x192ᵀ + bias", 384, 192, true),
            ("tiny qkv dx: 8320x576 · 576x192", 576, 192, false),
        ];
        const int M = 8320;
        var rnd = new Random(1);
        var one = new List<Interleaved.Case>();
        var all = new List<Interleaved.Case>();
        int slabs = Par.Workers;
        var keep = new List<float[]>(); // the Products hold raw pointers: the pinned arrays must stay alive
        foreach (var (name, k, n, transB) in shapes)
        {
            float[] a = Interleaved.PinnedRandom(M * k, rnd), b = Interleaved.PinnedRandom(k * n, rnd), bias = Interleaved.PinnedRandom(n, rnd);
            float[] c = GC.AllocateUninitializedArray<float>(M * n, pinned: true);
            keep.AddRange([a, b, c, bias]);
            fixed (float* pa = a, pb = b, pc = c, pbias = bias)
            {
                var p = new Product((nint)pa, (nint)pb, (nint)pc, name.Contains("bias") ? (nint)pbias : 0, M, n, k, transB, slabs, inPlace);
                var q = p with { Blocking = packed };
                one.Add(new(name + ", one slab", 2.0 * M * n * k / slabs, () => Slab(p, 0), () => Slab(q, 0)));
                all.Add(new(name, 2.0 * M * n * k, () => AllSlabs(p), () => AllSlabs(q)));
            }
        }
        double before = FmaPeak.Measure(allWorkers: false);
        Interleaved.Compare("AVX-512 forward and input-gradient products, one thread: A rows in place against A packed", "in place", "packed", one, rounds: 31);
        Console.WriteLine($"FMA loop on one core: {before:F1} / {FmaPeak.Measure(allWorkers: false):F1} GFLOP/s (before / after)");
        before = FmaPeak.Measure(allWorkers: true);
        Interleaved.Compare($"AVX-512 forward and input-gradient products, {slabs} threads: A rows in place against A packed", "in place", "packed", all, rounds: 31);
        Console.WriteLine($"FMA loop on {slabs} cores: {before:F1} / {FmaPeak.Measure(allWorkers: true):F1} GFLOP/s (before / after)");
        GC.KeepAlive(keep);
    }

    // Slab s of C's rows as CpuKernels.MatMul cuts it, on 8-row tile boundaries.
    private static void Slab(in Product p, int s)
    {
        float* a = (float*)p.A, b = (float*)p.B, c = (float*)p.C, bias = (float*)p.Bias;
        int r0 = Cut(p.M, s, p.Slabs, 8), r1 = Cut(p.M, s + 1, p.Slabs, 8);
        Gemm.Run(SimdPath.Vector512, p.Blocking, r1 - r0, p.N, p.K, a + (long)r0 * p.K, p.K, false, b, p.TransB ? p.K : p.N, p.TransB,
            c + (long)r0 * p.N, p.N, 1f, accumulate: false, bias);
    }

    private static int Cut(int size, int piece, int pieces, int tile) => piece == pieces ? size : (int)((long)size * piece / pieces) / tile * tile;

    private static void AllSlabs(Product p) =>
        Par.For(p.Slabs, long.MaxValue / p.Slabs, p, static (in Product q, int s0, int s1) =>
        {
            for (int s = s0; s < s1; s++) Slab(q, s);
        }, chunks: p.Slabs);
}
