using ViTScratch.Training.Commands;
using System.Diagnostics;
using System.Runtime.Intrinsics;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// This machine's CPU roofline and where each kernel of a vit-tiny training step sits on it, in one
/// process, printed as a markdown table:
///   ceilings: 12 chains of FMAs (no memory traffic) on one core and on every worker at once, and a
///     64 MB array copy cut across every worker (bytes read + written: memory, past the L3),
///     measured before the kernels and again after them, since the shared host's clock and
///     neighbours drift;
///   kernels: the matmuls, attention, layernorm, GELU, bias add and AdamW on vit-tiny's shapes at
///     batch 128 (8320 rows of 192, MLP 384, 3 heads of 65 tokens, 1.8M parameters), each the
///     median of 11 calls after 2 warm-up calls.
/// Bytes are compulsory traffic (every operand read once, every output written once; `+=` outputs
/// read too). A kernel with counted flops is bound by min(FMA peak, flop/byte x copy rate); the
/// memory-bound ones (flops not counted: a few per byte at most) by the rate of a copy that moves
/// as many bytes, timed in alternation with the kernel: their working sets (6-50 MB) sit partly
/// in the 32 MB L3, where a copy is faster than the 64 MB one.
/// Run: dotnet run -c Release --project Benchmarks -- --roofline
/// </summary>
public static class Roofline
{
    public const string Flag = "--roofline";

    private sealed record Kernel(string Name, string Shape, double Flops, double Bytes, Action Run);

    private const int Rows = 8320, Dim = 192, Mlp = 384, Heads = 3, Tokens = 65, HeadDim = 64, Params = 1_803_562;
    private const double F = sizeof(float);

    public static void Run()
    {
        var k = new CpuKernels();
        var rnd = new Random(1);
        DeviceBuffer Filled(int n) => Interleaved.Filled(k, n, rnd);

        var before = Ceilings.Measure();
        var kernels = new List<Kernel>();
        void MatMul(string name, int m, int n, int kk, bool ta, bool tb, bool acc)
        {
            var s = MatMulShape.Single(m, n, kk, ta, tb);
            DeviceBuffer a = Filled(m * kk), b = Filled(kk * n), c = Filled(m * n);
            kernels.Add(new(name, $"{m}x{kk}{(ta ? "ᵀ" : "")} · {kk}x{n}{(tb ? "ᵀ" : "")}{(acc ? " +=" : "")}",
                s.Flops, F * ((double)m * kk + (double)kk * n + (acc ? 2.0 : 1.0) * m * n), () => k.MatMul(a, b, c, s, 1f, acc)));
        }
        MatMul("matmul qkv", Rows, 3 * Dim, Dim, false, true, false);
        MatMul("matmul MLP up", Rows, Mlp, Dim, false, true, false);
        MatMul("matmul MLP down", Rows, Dim, Mlp, false, true, false);
        MatMul("matmul qkv dX", Rows, Dim, 3 * Dim, false, false, true);
        MatMul("matmul qkv dW", 3 * Dim, Dim, Rows, true, false, true);

        var att = new PackedAttentionBuffers(k, Rows / Tokens, Heads, Tokens, HeadDim, rnd);
        double pairs = Rows / Tokens * Heads, tile = pairs * Tokens * HeadDim * F;
        string attShape = $"{pairs} x {Tokens}x{HeadDim}";
        // Forward: S = Q Kᵀ and O = P V (2 N² d flops each); q, k, v read, o written.
        kernels.Add(new("attention forward", attShape, att.ForwardFlops, 4 * tile, () => att.Forward(k)));
        // Backward: S and G recomputed, then dV, dQ, dK (5 products); q, k, v, o, dO read, dq, dk, dv += .
        kernels.Add(new("attention backward", attShape, 2.5 * att.ForwardFlops, 11 * tile, () => att.Backward(k)));

        DeviceBuffer x = Filled(Rows * Dim), y = Filled(Rows * Dim), dy = Filled(Rows * Dim), dx = Filled(Rows * Dim);
        DeviceBuffer gamma = Filled(Dim), beta = Filled(Dim), dgamma = Filled(Dim), dbeta = Filled(Dim), mean = Filled(Rows), rstd = k.Allocate(Rows);
        k.LayerNormForward(x, gamma, beta, y, mean, rstd, Rows, Dim, 1e-5f);
        DeviceBuffer h = Filled(Rows * Mlp), hy = Filled(Rows * Mlp), hdx = Filled(Rows * Mlp), bias = Filled(Mlp);
        DeviceBuffer p = Filled(Params), g = Filled(Params), m1 = Filled(Params), v1 = k.Allocate(Params);
        double act = (double)Rows * Dim * F, hid = (double)Rows * Mlp * F;
        kernels.Add(new("layernorm forward", $"{Rows}x{Dim}", 0, 2 * act, () => k.LayerNormForward(x, gamma, beta, y, mean, rstd, Rows, Dim, 1e-5f)));
        // The backward passes add into dx: x and dy read, dx read and written.
        kernels.Add(new("layernorm backward", $"{Rows}x{Dim} +=", 0, 4 * act, () => k.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, Rows, Dim)));
        kernels.Add(new("GELU forward", $"{Rows}x{Mlp}", 0, 2 * hid, () => k.GeluForward(h, hy, Rows * Mlp)));
        kernels.Add(new("GELU backward", $"{Rows}x{Mlp} +=", 0, 4 * hid, () => k.GeluBackward(h, hy, hdx, Rows * Mlp)));
        kernels.Add(new("bias add", $"{Rows}x{Mlp}", 0, 2 * hid, () => k.AddBroadcast(h, bias, hy, 1, Rows, Mlp, 1f)));
        // AdamW reads parameter, gradient and both moments, writes parameter and both moments.
        kernels.Add(new("AdamW", $"{Params:N0} parameters", 0, 7.0 * Params * F,
            () => k.AdamWStep(p, g, m1, v1, Params, new AdamWArgs(1e-6f, 0.9f, 0.999f, 1e-8f, 0.05f, 10), null, 0f)));

        var times = new double[kernels.Count];
        var copyRates = new double[kernels.Count];
        for (int i = 0; i < kernels.Count; i++)
        {
            var kn = kernels[i];
            if (kn.Flops > 0) { times[i] = Median(kn.Run, calls: 11, warmup: 2); continue; }
            var copy = new SizedCopy((long)(kn.Bytes / 2));
            (times[i], double copyMs) = MedianPair(kn.Run, copy.Run, calls: 11, warmup: 2);
            copyRates[i] = kn.Bytes / copyMs / 1e6;
        }
        var after = Ceilings.Measure();

        // The roof is the higher of each pair: what the machine gave when it was least disturbed.
        double peak = Math.Max(before.FmaAll, after.FmaAll), bw = Math.Max(before.CopyGBs, after.CopyGBs);
        Console.WriteLine($"CPU roofline, {Par.Workers} threads, {(Vector512.IsHardwareAccelerated ? "AVX-512" : "AVX2")} path");
        Console.WriteLine($"FMA loop: {before.FmaOne:F1} / {after.FmaOne:F1} GFLOP/s on one core, {before.FmaAll:F1} / {after.FmaAll:F1} on {Par.Workers} (before / after the kernels)");
        Console.WriteLine($"array copy, 64 MB: {before.CopyGBs:F1} / {after.CopyGBs:F1} GB/s (read + written); ridge point {peak / bw:F1} flop/byte (higher of each pair)");
        Console.WriteLine();
        Console.WriteLine("| kernel | shape | ms | GFLOP/s | GB/s | flop/byte | bound (roof) | of roof |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---|---:|");
        for (int i = 0; i < kernels.Count; i++)
        {
            var kn = kernels[i];
            double ms = times[i], gbs = kn.Bytes / ms / 1e6;
            if (kn.Flops > 0)
            {
                double gf = kn.Flops / ms / 1e6, intensity = kn.Flops / kn.Bytes, bound = Math.Min(peak, intensity * bw);
                string by = bound < peak ? "memory" : "FMA";
                Console.WriteLine($"| {kn.Name} | {kn.Shape} | {ms:F2} | {gf:F1} | {gbs:F1} | {intensity:F1} | {by}: {bound:F0} GFLOP/s | {gf / bound:P0} |");
            }
            else
                Console.WriteLine($"| {kn.Name} | {kn.Shape} | {ms:F2} | | {gbs:F1} | | memory: copy of as many bytes, {copyRates[i]:F1} GB/s | {gbs / copyRates[i]:P0} |");
        }
    }

    private static double Median(Action run, int calls, int warmup)
    {
        for (int i = 0; i < warmup; i++) run();
        var t = new double[calls];
        var sw = new Stopwatch();
        for (int i = 0; i < calls; i++) { sw.Restart(); run(); t[i] = sw.Elapsed.TotalMilliseconds; }
        Array.Sort(t);
        return t[calls / 2];
    }

    // Both sides in every round, so the host's drift hits them alike.
    private static (double A, double B) MedianPair(Action a, Action b, int calls, int warmup)
    {
        for (int i = 0; i < warmup; i++) { a(); b(); }
        double[] ta = new double[calls], tb = new double[calls];
        var sw = new Stopwatch();
        for (int i = 0; i < calls; i++)
        {
            sw.Restart(); a(); ta[i] = sw.Elapsed.TotalMilliseconds;
            sw.Restart(); b(); tb[i] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(ta); Array.Sort(tb);
        return (ta[calls / 2], tb[calls / 2]);
    }

    // An array copy of `bytes` read and `bytes` written, cut across every worker.
    private sealed class SizedCopy(long bytes)
    {
        private readonly float[] _src = new float[bytes / sizeof(float)], _dst = new float[bytes / sizeof(float)];

        public void Run() => Par.For(64, _src.Length / 64 * 8L, (_src, _dst), static (in (float[] Src, float[] Dst) c, int s, int e) =>
        {
            int piece = c.Src.Length / 64, start = s * piece, end = e == 64 ? c.Src.Length : e * piece;
            c.Src.AsSpan(start, end - start).CopyTo(c.Dst.AsSpan(start));
        }, chunks: Par.Workers);
    }

    /// <summary>The two ceilings, each the median of 5 runs.</summary>
    private readonly record struct Ceilings(double FmaOne, double FmaAll, double CopyGBs)
    {
        private const long CopyBytes = 64 << 20; // each way: far past the L3
        private static readonly SizedCopy DramCopy = new(CopyBytes);

        public static Ceilings Measure()
        {
            double copy = 2.0 * CopyBytes / Median(DramCopy.Run, 5, 1) / 1e6;
            return new(FmaPeak.Measure(allWorkers: false), FmaPeak.Measure(allWorkers: true), copy);
        }
    }
}
