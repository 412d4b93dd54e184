using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// SmallGemm's Vector256 column split for 32 columns (the vit-micro head, d = 32): the product as
/// SmallGemm runs it now (two blocks of two vectors) against the split it used before (a block of
/// three vectors, then one vector: two calls on the same buffers, 24 columns and the last 8). The
/// shapes are the attention's products with 32 output columns, one (batch, head) pair of N = 65:
/// O = P V and dQ = dS K (65 x 65 · 65 x 32). One thread, many pairs' worth of calls per round;
/// both sides compute the same bits. Timed with <see cref="Interleaved"/>.
/// Run: DOTNET_EnableAVX512=0 dotnet run -c Release --project Benchmarks -- --interleaved-small-gemm
/// (on an AVX2 host the variable changes nothing).
/// </summary>
public static unsafe class SmallGemmSplitInterleaved
{
    public const string Flag = "--interleaved-small-gemm";

    public static void Run()
    {
        const int N = 65, D = 32, Np = 72, Calls = 512; // 512 = vit-micro's batch 128 x 4 heads
        var rnd = new Random(1);
        float[] Fill(int n) => Interleaved.PinnedRandom(n, rnd);
        float[] p = Fill(N * Np), v = Fill(N * D), o = Fill(N * D);
        var path = SimdPath.Vector256;
        void Now()
        {
            fixed (float* pp = p, pv = v, po = o)
                for (int c = 0; c < Calls; c++) SmallGemm.Run(path, N, D, N, pp, Np, 1, pv, D, po, D, 1f, accumulate: c > 0);
        }
        void Before()
        {
            fixed (float* pp = p, pv = v, po = o)
                for (int c = 0; c < Calls; c++)
                {
                    SmallGemm.Run(path, N, 24, N, pp, Np, 1, pv, D, po, D, 1f, accumulate: c > 0);
                    SmallGemm.Run(path, N, 8, N, pp, Np, 1, pv + 24, D, po + 24, D, 1f, accumulate: c > 0);
                }
        }
        var rows = new List<Interleaved.Case> { new($"{Calls} x ({N}x{N} · {N}x{D}), Vector256", 2.0 * Calls * N * N * D, Before, Now) };
        Interleaved.Compare("SmallGemm, 32 columns on Vector256: 24 + 8 (before) against 16 + 16 (now), one thread", "24+8", "16+16", rows, rounds: 41);
    }
}
