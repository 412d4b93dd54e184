using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// One piece of work per core against several (CpuKernels.ChunksPerWorker 1 against 4) for the
/// big parallel CPU kernels on vit-tiny's shapes at batch 128: the forward and input-gradient
/// matmuls (8320 rows = 128 x 65 tokens) and the fused attention forward and backward on the packed
/// layout. With one piece per core a call lasts as long as its slowest core; with four, the
/// faster core takes over pieces. Results are identical either way (each piece is computed alone).
/// Timed with <see cref="Interleaved"/>: 1 then 4 in every round, on the same buffers.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-chunks
/// </summary>
public static class ChunksInterleaved
{
    public const string Flag = "--interleaved-chunks";

    public static void Run()
    {
        var one = new CpuKernels { ChunksPerWorker = 1 };
        var four = new CpuKernels { ChunksPerWorker = 4 };
        var rnd = new Random(1);
        var rows = new List<Interleaved.Case>();
        (string Name, MatMulShape Shape, bool Accumulate)[] products =
        [
            ("qkv 8320x192x576 NT", MatMulShape.Single(8320, 576, 192, transB: true), false),
            ("mlp1 8320x192x384 NT", MatMulShape.Single(8320, 384, 192, transB: true), false),
            ("mlp2 8320x384x192 NT", MatMulShape.Single(8320, 192, 384, transB: true), false),
            ("qkv dx 8320x576x192", MatMulShape.Single(8320, 192, 576), true),
        ];
        foreach (var (name, s, acc) in products)
        {
            var a = Interleaved.Filled(one, s.M * s.K, rnd); var b = Interleaved.Filled(one, s.K * s.N, rnd); var c = Interleaved.Filled(one, s.M * s.N, rnd);
            rows.Add(new(name, s.Flops, () => one.MatMul(a, b, c, s, 1f, acc), () => four.MatMul(a, b, c, s, 1f, acc)));
        }
        var att = new PackedAttentionBuffers(one, batch: 128, heads: 3, n: 65, d: 64, rnd);
        rows.Add(new("attention forward (vit-tiny)", att.ForwardFlops, () => att.Forward(one), () => att.Forward(four)));
        rows.Add(new("attention backward (vit-tiny)", 2 * att.ForwardFlops, () => att.Backward(one), () => att.Backward(four)));
        Interleaved.Compare($"CPU matmul and attention, 1 against 4 pieces per worker, {Par.Workers} threads", "1 per worker", "4 per worker", rows);
    }
}
