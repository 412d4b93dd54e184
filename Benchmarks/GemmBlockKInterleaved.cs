using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The AVX2 matmul's K block (Gemm KC): 256, the old default, against 384, the new one, on
/// vit-tiny's shapes at batch 128 (8320 rows = 128 x 65 tokens; dim 192, qkv 576, MLP 384).
/// KC decides how many passes a product makes over C (K = 384 is one block at 384, two at 256)
/// and how much of L1 a B micro-panel takes (KC x 16 floats: 16 KB at 256, 24 KB at 384). The
/// K = 192 product is the control: one block either way, the same code.
///
/// Timed with <see cref="Interleaved"/> (256 then 384 in every round), not BenchmarkDotNet: see there.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-gemm-block-k
/// </summary>
public static class GemmBlockKInterleaved
{
    public const string Flag = "--interleaved-gemm-block-k";

    public static void Run()
    {
        var kc256 = new CpuKernels { SimdPath = SimdPath.Vector256, GemmOptions = new(BlockK: 256) };
        var kc384 = new CpuKernels { SimdPath = SimdPath.Vector256, GemmOptions = new(BlockK: 384) };
        (string Name, MatMulShape Shape, bool Accumulate)[] cases =
        [
            ("qkv 8320x192x576 NT (control)", MatMulShape.Single(8320, 576, 192, transB: true), false),
            ("mlp2 8320x384x192 NT", MatMulShape.Single(8320, 192, 384, transB: true), false),
            ("mlp1 dx 8320x384x192", MatMulShape.Single(8320, 192, 384), true),
            ("qkv dx 8320x576x192", MatMulShape.Single(8320, 192, 576), true),
            ("qkv dW 576x8320x192 TN", MatMulShape.Single(576, 192, 8320, transA: true), true),
        ];
        var rnd = new Random(1);
        DeviceBuffer Filled(int n) => Interleaved.Filled(kc256, n, rnd);

        var rows = new List<Interleaved.Case>();
        foreach (var (name, s, acc) in cases)
        {
            var a = Filled(s.M * s.K); var b = Filled(s.K * s.N); var c = Filled(s.M * s.N);
            rows.Add(new(name, s.Flops, () => kc256.MatMul(a, b, c, s, 1f, acc), () => kc384.MatMul(a, b, c, s, 1f, acc)));
        }
        Interleaved.Compare($"AVX2 matmul, K block 256 against 384, {Par.Workers} threads", "KC 256", "KC 384", rows);
    }
}
