using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The CPU matmul with one of its tuning knobs (GemmOptions) set two ways, on vit-tiny's products at batch 128 (8320 rows = 128 x 65 tokens): the forward products (the
/// weight B read transposed; bias-free here), the input gradients (`+=` into C) and the weight
/// gradients (A read transposed, K = 8320).
///   --interleaved-gemm-prefetch: no C prefetch (Gemm.PrefetchTile) against the default.
///   --interleaved-gemm-pack-b:   a transposed B packed element by element against 8 x 8 blocks.
///   --interleaved-gemm-pack-prefetch: k-major packing (transposed A, B as stored) without and
///     with prefetching source rows ahead.
///   --interleaved-gemm-block-k:  the AVX2 K block (KC) 256, the old default, against 384. KC
///     decides how many passes a product makes over C (K = 384 is one block at 384, two at 256)
///     and how much of L1 a B micro-panel takes (KC x 16 floats: 16 KB at 256, 24 KB at 384);
///     the K = 192 products are the control (one block either way).
/// Timed with <see cref="Interleaved"/>: both settings in every round, on the same buffers.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-gemm-prefetch
/// </summary>
public static class GemmOptionsInterleaved
{
    public const string PrefetchFlag = "--interleaved-gemm-prefetch";
    public const string PackBFlag = "--interleaved-gemm-pack-b";
    public const string BlockKFlag = "--interleaved-gemm-block-k";
    public const string PackPrefetchFlag = "--interleaved-gemm-pack-prefetch";

    public static void Run(string flag)
    {
        var (off, on, what, a, b) = flag switch
        {
            PackBFlag => (new CpuKernels { GemmOptions = new(ScalarPackB: true) }, new CpuKernels(),
                "transposed B packed by element against 8 x 8 blocks", "off", "on"),
            PackPrefetchFlag => (new CpuKernels { GemmOptions = new(NoPackPrefetch: true) }, new CpuKernels(),
                "packing without and with prefetching rows ahead", "off", "on"),
            BlockKFlag => (new CpuKernels { SimdPath = SimdPath.Vector256, GemmOptions = new(BlockK: 256) },
                new CpuKernels { SimdPath = SimdPath.Vector256, GemmOptions = new(BlockK: 384) }, "K block 256 against 384", "KC 256", "KC 384"),
            _ => (new CpuKernels { GemmOptions = new(NoPrefetchC: true) }, new CpuKernels(), "C prefetch off against on", "off", "on"),
        };
        var rnd = new Random(1);
        (string Name, MatMulShape Shape, bool Accumulate)[] cases =
        [
            ("qkv 8320x192x576 NT", MatMulShape.Single(8320, 576, 192, transB: true), false),
            ("mlp1 8320x192x384 NT", MatMulShape.Single(8320, 384, 192, transB: true), false),
            ("mlp2 8320x384x192 NT", MatMulShape.Single(8320, 192, 384, transB: true), false),
            ("proj 8320x192x192 NT", MatMulShape.Single(8320, 192, 192, transB: true), false),
            ("qkv dx 8320x576x192 +=", MatMulShape.Single(8320, 192, 576), true),
            ("mlp1 dx 8320x384x192 +=", MatMulShape.Single(8320, 192, 384), true),
            ("qkv dW 576x8320x192 TN +=", MatMulShape.Single(576, 192, 8320, transA: true), true),
            ("mlp1 dW 192x8320x384 TN +=", MatMulShape.Single(192, 384, 8320, transA: true), true),
        ];
        var rows = new List<Interleaved.Case>();
        foreach (var (name, s, acc) in cases)
        {
            if (flag == PackBFlag && !s.TransB) continue; // the knob only touches a transposed B
            var x = Interleaved.Filled(on, s.M * s.K, rnd); var y = Interleaved.Filled(on, s.K * s.N, rnd); var z = Interleaved.Filled(on, s.M * s.N, rnd);
            rows.Add(new(name, s.Flops, () => off.MatMul(x, y, z, s, 1f, acc), () => on.MatMul(x, y, z, s, 1f, acc)));
        }
        Interleaved.Compare($"CPU matmul ({on.SimdPath}), {what}, {Par.Workers} threads", a, b, rows);
    }
}
