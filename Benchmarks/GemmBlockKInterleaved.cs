using System.Diagnostics;
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
/// Not a BenchmarkDotNet class on purpose: BenchmarkDotNet times one method after the other, and
/// on the shared 2-core host the control itself came out 1.48x apart between the two (identical)
/// methods. Here every round runs 256 then 384 on the same buffers, so the host's drift hits both;
/// the medians of 25 rounds and their ratio are printed.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-gemm-block-k
/// </summary>
public static class GemmBlockKInterleaved
{
    public const string Flag = "--interleaved-gemm-block-k";

    public static void Run()
    {
        var kc256 = new CpuKernels { SimdPath = SimdPath.Vector256, GemmBlockK = 256 };
        var kc384 = new CpuKernels { SimdPath = SimdPath.Vector256, GemmBlockK = 384 };
        (string Name, MatMulShape Shape, bool Accumulate)[] cases =
        [
            ("qkv 8320x192x576 NT (control)", MatMulShape.Single(8320, 576, 192, transB: true), false),
            ("mlp2 8320x384x192 NT", MatMulShape.Single(8320, 192, 384, transB: true), false),
            ("mlp1 dx 8320x384x192", MatMulShape.Single(8320, 192, 384), true),
            ("qkv dx 8320x576x192", MatMulShape.Single(8320, 192, 576), true),
            ("qkv dW 576x8320x192 TN", MatMulShape.Single(576, 192, 8320, transA: true), true),
        ];
        var rnd = new Random(1);
        DeviceBuffer Filled(int n)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
            var b = kc256.Allocate(n);
            kc256.Upload(x, b);
            return b;
        }

        Console.WriteLine($"AVX2 matmul, K block 256 against 384, {Par.Workers} threads, medians of 25 interleaved rounds");
        Console.WriteLine("| shape | KC 256 ms | GFLOP/s | KC 384 ms | GFLOP/s | 256 / 384 |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var (name, s, acc) in cases)
        {
            var a = Filled(s.M * s.K); var b = Filled(s.K * s.N); var c = Filled(s.M * s.N);
            for (int w = 0; w < 5; w++) { kc256.MatMul(a, b, c, s, 1f, acc); kc384.MatMul(a, b, c, s, 1f, acc); }
            const int Rounds = 25;
            var t256 = new double[Rounds];
            var t384 = new double[Rounds];
            for (int r = 0; r < Rounds; r++)
            {
                var sw = Stopwatch.StartNew();
                kc256.MatMul(a, b, c, s, 1f, acc);
                t256[r] = sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                kc384.MatMul(a, b, c, s, 1f, acc);
                t384[r] = sw.Elapsed.TotalMilliseconds;
            }
            Array.Sort(t256);
            Array.Sort(t384);
            double m256 = t256[Rounds / 2], m384 = t384[Rounds / 2];
            Console.WriteLine($"| {name} | {m256:F2} | {s.Flops / m256 / 1e6:F1} | {m384:F2} | {s.Flops / m384 / 1e6:F1} | {m256 / m384:F2} |");
        }
    }
}
