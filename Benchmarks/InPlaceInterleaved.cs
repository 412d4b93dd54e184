using ViTScratch.Kernels.Cpu;
using ViTScratch.Training.Commands;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The weight gradient on AVX-512 (C = Aᵀ B, A [K, M] and B [K, N] row-major, K = batch x tokens
/// = 8320 at batch 128): A read in place by the micro-kernel (Gemm.Avx512, today's) against A
/// packed first (the same blocking with TransposedAInPlace off), on the products of vit-micro and
/// vit-tiny. Each product runs as CpuKernels.MatMul cuts it: slabs of rows (or columns where
/// N > M), one per core, each packing its own B; timed on one thread (one slab) and on all cores (every slab at once). Both
/// sides give the same bits: the same micro-kernel arithmetic on the same values in the same order.
/// Timed with <see cref="Interleaved"/>.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-inplace   (AVX-512 hosts)
/// </summary>
public static unsafe class InPlaceInterleaved
{
    public const string Flag = "--interleaved-inplace";

    private readonly record struct Product(nint A, nint B, nint C, int M, int N, int K, int Slabs, Gemm.Blocking Blocking);

    public static void Run()
    {
        if (SimdPaths.Detected != SimdPath.Vector512)
        {
            Console.WriteLine($"{Flag}: this host runs the Vector256 path, which packs a transposed A (Gemm.cs says why); nothing to time");
            return;
        }
        var inPlace = Gemm.Avx512;
        var packed = inPlace with { TransposedAInPlace = false };
        // (name, M, N): K = 8320 throughout.
        (string, int, int)[] shapes =
        [
            ("micro qkv dW: 384x8320ᵀ · 8320x128", 384, 128),
            ("micro fc1 dW: 128x8320ᵀ · 8320x256", 128, 256),
            ("micro fc2 dW: 256x8320ᵀ · 8320x128", 256, 128),
            ("tiny qkv dW: 576x8320ᵀ · 8320x192", 576, 192),
            ("tiny fc1 dW: 192x8320ᵀ · 8320x384", 192, 384),
            ("tiny fc2 dW: 384x8320ᵀ · 8320x192", 384, 192),
        ];
        const int K = 8320;
        var rnd = new Random(1);
        var one = new List<Interleaved.Case>();
        var all = new List<Interleaved.Case>();
        int slabs = Par.Workers;
        var keep = new List<float[]>(); // the Products hold raw pointers: the pinned arrays must stay alive
        foreach (var (name, m, n) in shapes)
        {
            float[] a = Interleaved.PinnedRandom(m * K, rnd), b = Interleaved.PinnedRandom(K * n, rnd);
            float[] c = GC.AllocateUninitializedArray<float>(m * n, pinned: true);
            keep.AddRange([a, b, c]);
            fixed (float* pa = a, pb = b, pc = c)
            {
                var p = new Product((nint)pa, (nint)pb, (nint)pc, m, n, K, slabs, inPlace);
                var q = p with { Blocking = packed };
                one.Add(new(name + ", one slab", 2.0 * m * n * K / slabs, () => Slab(p, 0), () => Slab(q, 0)));
                all.Add(new(name, 2.0 * m * n * K, () => AllSlabs(p), () => AllSlabs(q)));
            }
        }
        double before = FmaPeak.Measure(allWorkers: false);
        Interleaved.Compare("AVX-512 weight gradient, one thread: A in place (now) against A packed", "in place", "packed", one, rounds: 31);
        Console.WriteLine($"FMA loop on one core: {before:F1} / {FmaPeak.Measure(allWorkers: false):F1} GFLOP/s (before / after)");
        before = FmaPeak.Measure(allWorkers: true);
        Interleaved.Compare($"AVX-512 weight gradient, {slabs} threads: A in place (now) against A packed", "in place", "packed", all, rounds: 31);
        Console.WriteLine($"FMA loop on {slabs} cores: {before:F1} / {FmaPeak.Measure(allWorkers: true):F1} GFLOP/s (before / after)");
        GC.KeepAlive(keep);
    }

    // Slab s of C as CpuKernels.MatMul cuts it: rows (M >= N) or columns, on tile boundaries.
    private static void Slab(in Product p, int s)
    {
        float* a = (float*)p.A, b = (float*)p.B, c = (float*)p.C;
        if (p.M >= p.N)
        {
            int r0 = Cut(p.M, s, p.Slabs, 8), r1 = Cut(p.M, s + 1, p.Slabs, 8);
            Gemm.Run(SimdPath.Vector512, p.Blocking, r1 - r0, p.N, p.K, a + r0, p.M, true, b, p.N, false, c + (long)r0 * p.N, p.N, 1f, accumulate: false);
        }
        else
        {
            int j0 = Cut(p.N, s, p.Slabs, 32), j1 = Cut(p.N, s + 1, p.Slabs, 32);
            Gemm.Run(SimdPath.Vector512, p.Blocking, p.M, j1 - j0, p.K, a, p.M, true, b + j0, p.N, false, c + j0, p.N, 1f, accumulate: false);
        }
    }

    private static int Cut(int size, int piece, int pieces, int tile) => piece == pieces ? size : (int)((long)size * piece / pieces) / tile * tile;

    private static void AllSlabs(Product p) =>
        Par.For(p.Slabs, long.MaxValue / p.Slabs, p, static (in Product q, int s0, int s1) =>
        {
            for (int s = s0; s < s1; s++) Slab(q, s);
        }, chunks: p.Slabs);
}
