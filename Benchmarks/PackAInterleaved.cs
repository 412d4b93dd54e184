using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The AVX-512 matmul's A packing (8-row panels, k-major) element by element against 8 x 8
/// register blocks (Block8x8), on one thread, over vit-tiny's activations at batch 128 (8320 rows
/// of 192 or 384) cut into the AVX-512 blocking's 128 x 256 blocks, as Gemm packs them. The
/// AVX-512 path packs every A block this way (the AVX2 path reads a row-major A in place), so this
/// is the packing half of that path; the packing itself runs on any AVX machine, which is why it
/// can be timed on the AVX2 development host although the AVX-512 product cannot.
/// GB/s counts one read and one write of A. Timed with <see cref="Interleaved"/>.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-pack-a
/// </summary>
public static unsafe class PackAInterleaved
{
    public const string Flag = "--interleaved-pack-a";

    public static void Run()
    {
        const int MC = 128, KC = 256, MR = 8;
        var rows = new List<Interleaved.Case>();
        foreach (var (m, k) in new[] { (8320, 192), (8320, 384) })
        {
            var a = GC.AllocateUninitializedArray<float>(m * k, pinned: true);
            var rnd = new Random(1);
            for (int i = 0; i < a.Length; i++) a[i] = (float)(rnd.NextDouble() - 0.5);
            var dst = GC.AllocateUninitializedArray<float>(MC * KC + 16, pinned: true);
            void Pack(bool blocked)
            {
                fixed (float* pa = a, pd = dst)
                    for (int pc = 0; pc < k; pc += KC)
                        for (int ic = 0; ic < m; ic += MC)
                            Packing.PackA(pa, k, false, ic, Math.Min(MC, m - ic), pc, Math.Min(KC, k - pc), MR, pd, blocked, Packing.RowsAhead);
            }
            rows.Add(new($"A {m}x{k}, 8-row panels", 8.0 * m * k, () => Pack(false), () => Pack(true)));
        }
        Interleaved.Compare("AVX-512 A packing, element by element against 8 x 8 blocks, one thread", "scalar", "blocked", rows, rate: "GB/s");
    }
}
