using System.Diagnostics;
using System.Globalization;
using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Model;
using ViTScratch.Training.Optim;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The fusions of issue 20 item 2, fused against unfused, interleaved, on vit-tiny's shapes at
/// batch 128 (8320 rows = 128 x 65 tokens; width 192, MLP 384):
/// - kernels: GeluBiasBackward against Fill + GeluBackward + SumMid (what the backward of Linear
///   then Gelu ran), AddLayerNormForward against AddBroadcast + LayerNormForward, and the forward
///   fusion that was not kept (Lab/LinearGelu01Epilogue) against the matmul + GeluForward;
/// - whole training steps (forward, backward, clip, AdamW) of vit-tiny with Engine's Fusions
///   switched: none, LinearGelu only, AddLayerNorm only, both, in a rotating order every round.
/// Each round times every side once on the same buffers (or model), and the order of the sides
/// rotates from round to round, so neither drift nor going first favours a side. Printed: the
/// median time of each side and the per-round ratio's median, quartiles and range, with the
/// load average before and after (the host is shared).
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-fusions [kernels|step] [--rounds N]
/// (default rounds: 201 for the kernels, 12 for the steps)
/// </summary>
public static class FusionsInterleaved
{
    public const string Flag = "--interleaved-fusions";
    private const int Rows = 128 * 65, Dim = 192, Hidden = 384;

    public static void Run(string[] args)
    {
        string what = args.Length > 1 && !args[1].StartsWith("--", StringComparison.Ordinal) ? args[1] : "all";
        int at = Array.IndexOf(args, "--rounds");
        int? rounds = at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : null;
        if (what is not ("all" or "kernels" or "step"))
            throw new ViTScratchException($"{Flag}: expected kernels, step or nothing (both), as in: {Flag} kernels --rounds 41");
        Console.WriteLine($"{Par.Workers} threads, {SimdPaths.Detected}; load average {LoadAverage()}");
        if (what is "all" or "kernels") Kernels(rounds ?? 201);
        if (what is "all" or "step") Step(rounds ?? 12);
        Console.WriteLine($"load average after: {LoadAverage()}");
    }

    private static void Kernels(int rounds)
    {
        var k = new CpuKernels();
        var rnd = new Random(1);
        int nh = Rows * Hidden, nd = Rows * Dim;
        var h = Filled(k, nh, rnd, 3); var dy = Filled(k, nh, rnd, 1); var dh = k.Allocate(nh); var dbias = k.Allocate(Hidden);
        var a = Filled(k, nd, rnd, 1); var b = Filled(k, nd, rnd, 1); var s = k.Allocate(nd); var y = k.Allocate(nd);
        var gamma = Filled(k, Dim, rnd, 1); var beta = Filled(k, Dim, rnd, 1); var mean = k.Allocate(Rows); var rstd = k.Allocate(Rows);
        Console.WriteLine();
        Console.WriteLine($"Kernels at vit-tiny's shapes, batch 128; {rounds} rounds, the two sides alternating (order swapped every round)");
        Console.WriteLine("| case | unfused ms | fused ms | unfused / fused: median | quartiles | range | fastest: unfused / fused ms | ratio |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        Table($"GELU backward + bias gradient, {Rows}x{Hidden}", rounds,
            () =>
            {
                k.Fill(dh, 0f, nh);                                   // ZeroIfUnwritten before the += kernel
                k.GeluBackward(h, dy, dh, nh);
                k.SumMid(dh, dbias, 1, Rows, Hidden, 1f, accumulate: true);
            },
            () => k.GeluBiasBackward(h, dy, dh, dbias, Rows, Hidden, accumulateDx: false, accumulateBias: true));
        Table($"residual add + LayerNorm forward, {Rows}x{Dim}", rounds,
            () =>
            {
                k.AddBroadcast(a, b, s, nd, 1, 1, 1f);
                k.LayerNormForward(s, gamma, beta, y, mean, rstd, Rows, Dim, 1e-5f);
            },
            () => k.AddLayerNormForward(a, b, s, gamma, beta, y, mean, rstd, Rows, Dim, 1e-5f));
        // The forward fusion that was not kept: Lab/LinearGelu01Epilogue (GELU in the matmul's epilogue).
        var x = Filled(k, nd, rnd, 1); var w = Filled(k, Hidden * Dim, rnd, 0.1); var bias = Filled(k, Hidden, rnd, 0.1);
        var g = k.Allocate(nh); var g2 = k.Allocate(nh);
        var mm = MatMulShape.Single(Rows, Hidden, Dim, transB: true);
        void Mainline(DeviceBuffer into) { k.MatMul(x, w, h, mm, 1f, false, bias); k.GeluForward(h, into, nh); }
        void Epilogue(DeviceBuffer into) => Lab.LinearGelu01Epilogue.Run(k, x, w, bias, h, into, Rows, Hidden, Dim);
        Mainline(g); Epilogue(g2);
        if (!Download(k, g, nh).AsSpan().SequenceEqual(Download(k, g2, nh)))
            throw new InvalidOperationException("Lab/LinearGelu01Epilogue differs from the mainline's matmul + GeluForward");
        Table($"up + bias, then GELU forward (Lab/LinearGelu01Epilogue), {Rows}x{Dim}x{Hidden}", rounds, () => Mainline(g), () => Epilogue(g));
    }

    private static float[] Download(CpuKernels k, DeviceBuffer b, int n)
    {
        var a = new float[n];
        k.Download(b, a);
        return a;
    }

    private static void Table(string name, int rounds, Action unfused, Action fused)
    {
        var t = Time(rounds, warmup: 5, [unfused, fused]);
        var ratio = t[0].Zip(t[1], (u, f) => u / f).ToArray();
        // Under heavy load a call is often descheduled mid-way; the fastest of many calls is the
        // one that ran least disturbed, so its ratio is printed beside the medians.
        Console.WriteLine($"| {name} | {Median(t[0]):F2} | {Median(t[1]):F2} | {Spread(ratio)} | {t[0].Min():F2} / {t[1].Min():F2} | {t[0].Min() / t[1].Min():F3} |");
    }

    private static void Step(int rounds)
    {
        using var device = Device.Create("cpu");
        var model = new ViT(ViTPresets.Create("vit-tiny", 3, 32, 32, 10), device, seed: 0);
        model.Train();
        var optimizer = new AdamW(OptimParam.From(model), 0.05f, maxGradNorm: 1f);
        var rng = new Random(0);
        var images = Enumerable.Range(0, 128 * 3 * 32 * 32).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var labels = Enumerable.Range(0, 128).Select(_ => (float)rng.Next(10)).ToArray();
        Action StepWith(bool gelu, bool norm) => () =>
        {
            Fusions.LinearGelu = gelu;
            Fusions.AddLayerNorm = norm;
            using var scope = new TensorScope();
            var loss = Ops.Mean(Ops.CrossEntropy(model.Forward(Tensor.Input(device, images, 128, 3, 32, 32)), Tensor.Input(device, labels, 128), 0.1f));
            loss.Backward();
            optimizer.Step(1e-4f);
            optimizer.ZeroGrad();
            _ = loss.Item();
        };
        string[] names = ["none", "LinearGelu", "AddLayerNorm", "both"];
        var t = Time(rounds, warmup: 2, [StepWith(false, false), StepWith(true, false), StepWith(false, true), StepWith(true, true)]);
        Fusions.LinearGelu = Fusions.AddLayerNorm = true;
        Console.WriteLine();
        Console.WriteLine($"Whole vit-tiny training steps, batch 128; {rounds} rounds, the four sides in a rotating order");
        Console.WriteLine("| fusions | step ms, median | img/s | none / this: median | quartiles | range | fastest step ms |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        for (int i = 0; i < names.Length; i++)
        {
            var ratio = t[0].Zip(t[i], (u, f) => u / f).ToArray();
            Console.WriteLine($"| {names[i]} | {Median(t[i]):F0} | {128_000 / Median(t[i]):F1} | {(i == 0 ? "1 | | " : Spread(ratio))} | {t[i].Min():F0} |");
        }
    }

    // times[side][round]; side order rotates by one every round.
    private static double[][] Time(int rounds, int warmup, Action[] sides)
    {
        for (int w = 0; w < warmup; w++) foreach (var s in sides) s();
        var times = sides.Select(_ => new double[rounds]).ToArray();
        var sw = new Stopwatch();
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < sides.Length; j++)
            {
                int side = (j + r) % sides.Length;
                sw.Restart();
                sides[side]();
                times[side][r] = sw.Elapsed.TotalMilliseconds;
            }
        return times;
    }

    private static string Spread(double[] ratio)
    {
        var r = ratio.OrderBy(v => v).ToArray();
        double Q(double p) => r[(int)Math.Round(p * (r.Length - 1))];
        return $"**{Q(0.5):F3}** | {Q(0.25):F3}-{Q(0.75):F3} | {r[0]:F3}-{r[^1]:F3}";
    }

    private static double Median(double[] x) => x.OrderBy(v => v).ElementAt(x.Length / 2);

    private static DeviceBuffer Filled(CpuKernels k, int n, Random rnd, double scale)
    {
        var b = Interleaved.Filled(k, n, rnd);
        k.Scale(b, b, n, (float)(2 * scale), accumulate: false);   // uniform in [-scale, scale)
        return b;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
}
