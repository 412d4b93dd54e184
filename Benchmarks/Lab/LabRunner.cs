using ILGPU;
using ILGPU.Runtime;
using ViTScratch.Benchmarks.Gpu;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Benchmarks.Lab;

/// <summary>
/// The lab, in llm.c's dev/cuda manner: every numbered version of a GPU kernel, validated against a
/// float64 reference and timed with device events on the same buffers.
///   dotnet run -c Release --project Benchmarks -- --lab matmul [--device cuda|ilgpu-cpu] [--quick]
/// Each version launches its kernel directly (no split-K), so the versions compare kernel to
/// kernel; the "mainline" row is GpuKernels.MatMul, the dispatcher a training step calls (split-K
/// included). Validation: every output of a small shape, 256 sampled outputs of a large one, each
/// within the float32 bound K·2⁻²³·Σ|a||b| of the float64 dot product. Exit code 1 if any fails.
/// On the ILGPU CPU simulator (--device ilgpu-cpu, the default without a GPU) the timings mean nothing;
/// --quick keeps to small shapes there.
/// </summary>
public static class LabRunner
{
    public const string Flag = "--lab";

    private sealed record MatMulVersion(string Name, int Tile,
        Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs> Kernel);

    private static readonly MatMulVersion[] MatMulVersions =
    [
        new("01 plain 64x64", MatMul01Plain.Tile, MatMul01Plain.MatMul),
        new("02 128x128", MatMul02Large128.Tile, MatMul02Large128.MatMul),
        new("03 double-buffered 64x64", MatMul03Pipelined.Tile, MatMul03Pipelined.Kernel),
    ];

    public static int Run(string[] args)
    {
        string what = args.Length > 1 ? args[1] : "";
        if (what != "matmul")
            throw new ViTScratchException($"{Flag}: expected what to run, as in: {Flag} matmul [--device cuda|ilgpu-cpu] [--quick]");
        string device = Option(args, "--device") ?? (BackendFactory.HasCuda ? "cuda" : "ilgpu-cpu");
        if (device is not ("cuda" or "ilgpu-cpu"))
            throw new ViTScratchException($"{Flag}: --device must be cuda or ilgpu-cpu, got '{device}'");
        bool quick = args.Contains("--quick") || device == "ilgpu-cpu";
        using var k = (GpuKernels)BackendFactory.Create(device);
        Console.WriteLine($"device: {k.Accelerator.Name}{(device == "ilgpu-cpu" ? " (ILGPU CPU simulator: timings mean nothing)" : "")}");
        return MatMul(k, quick) ? 0 : 1;
    }

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static bool MatMul(GpuKernels k, bool quick)
    {
        var shapes = quick
            ? new[]
            {
                ("ragged 67x45x33", MatMulShape.Single(67, 45, 33)),
                ("ragged Aᵀ 33x20x70", MatMulShape.Single(33, 20, 70, transA: true)),
                ("batched Bᵀ 3x17x19x8", MatMulShape.Batched(3, 17, 19, 8, transB: true)),
                ("Aᵀ Bᵀ 130x70x40", MatMulShape.Single(130, 70, 40, transA: true, transB: true)),
            }
            : new[]
            {
                ("4096³", MatMulShape.Single(4096, 4096, 4096)),
                ("qkv [8320,192]x[192,576]", MatMulShape.Single(8320, 576, 192)),
                ("proj [8320,384]x[384,192]", MatMulShape.Single(8320, 192, 384)),
                ("dW [576,8320]x[8320,192] Aᵀ", MatMulShape.Single(576, 192, 8320, transA: true)),
                ("dX [8320,576]x[576,192]ᵀ Bᵀ", MatMulShape.Single(8320, 192, 576, transB: true)),
                ("batched [65,64]x[64,65]ᵀ x384", MatMulShape.Batched(384, 65, 65, 64, transB: true)),
            };
        var timer = new DeviceTimer(k.Accelerator, quick ? 3 : 25);
        var rng = new Random(1234);
        bool allOk = true;
        Console.WriteLine("| version | shape | ms | GFLOP/s | worst error / bound | valid |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var (name, s) in shapes)
        {
            var ha = RandomHost(rng, s.Batch * s.M * s.K);
            var hb = RandomHost(rng, s.Batch * s.K * s.N);
            using var a = Upload(k, ha);
            using var b = Upload(k, hb);
            using var c = k.Allocate(s.Batch * s.M * s.N);
            using var noBias = k.Allocate(1);
            var p = new MatMulKernelArgs(s.M, s.N, s.K, s.TransA ? 1 : 0, s.TransB ? 1 : 0,
                (int)s.StrideA, (int)s.StrideB, (int)s.StrideC, 1f, 0, 0, 0);
            foreach (var v in MatMulVersions)
            {
                var launch = k.Accelerator.LoadStreamKernel(v.Kernel);
                var config = new KernelConfig(new Index3D((s.N + v.Tile - 1) / v.Tile, (s.M + v.Tile - 1) / v.Tile, s.Batch), new Index3D(256, 1, 1));
                void Op() => launch(config, View(a), View(b), View(c), View(noBias), p);
                allOk &= Report(k, v.Name, name, s, ha, hb, c, timer.MedianMs(Op), Op);
            }
            void Mainline() => k.MatMul(a, b, c, s, 1f, accumulate: false);
            allOk &= Report(k, "mainline GpuKernels.MatMul", name, s, ha, hb, c, timer.MedianMs(Mainline), Mainline);
        }
        Console.WriteLine(allOk ? "all versions valid" : "SOME VERSIONS FAILED VALIDATION");
        return allOk;
    }

    // Runs op once more on a zeroed C, then checks it against float64 and prints the row.
    private static bool Report(GpuKernels k, string version, string shapeName, MatMulShape s, float[] ha, float[] hb, DeviceBuffer c, double ms, Action op)
    {
        k.Fill(c, float.NaN, c.Length);
        op();
        var hc = new float[c.Length];
        k.Download(c, hc);
        double worst = Worst(s, ha, hb, hc);
        bool ok = worst <= 1.0;
        Console.WriteLine($"| {version} | {shapeName} | {ms:F3} | {s.Flops / ms / 1e6:F0} | {worst:F3} | {(ok ? "yes" : "NO")} |");
        return ok;
    }

    // The largest |c - c64| / (K 2⁻²³ Σ|a||b| + 1e-30) over every output (small shapes) or 256
    // sampled ones: above 1 means the kernel is wrong, not rounded. NaN (an output never
    // written over the NaN fill) counts as a failure.
    private static double Worst(MatMulShape s, float[] a, float[] b, float[] c)
    {
        long outputs = (long)s.Batch * s.M * s.N;
        var rng = new Random(7);
        int checks = outputs <= 1 << 16 ? (int)outputs : 256;
        double worst = 0;
        for (int t = 0; t < checks; t++)
        {
            long o = checks == outputs ? t : rng.NextInt64(outputs);
            int bt = (int)(o / ((long)s.M * s.N)), i = (int)(o / s.N % s.M), j = (int)(o % s.N);
            double sum = 0, abs = 0;
            for (int p = 0; p < s.K; p++)
            {
                double av = s.TransA ? a[bt * s.StrideA + (long)p * s.M + i] : a[bt * s.StrideA + (long)i * s.K + p];
                double bv = s.TransB ? b[bt * s.StrideB + (long)j * s.K + p] : b[bt * s.StrideB + (long)p * s.N + j];
                sum += av * bv; abs += Math.Abs(av * bv);
            }
            double err = Math.Abs(c[o] - sum) / (s.K * Math.ScaleB(1.0, -23) * abs + 1e-30);
            if (double.IsNaN(err)) return double.PositiveInfinity;
            worst = Math.Max(worst, err);
        }
        return worst;
    }

    private static float[] RandomHost(Random rng, long n)
    {
        var h = new float[n];
        for (long i = 0; i < n; i++) h[i] = (float)(rng.NextDouble() * 2 - 1);
        return h;
    }

    private static DeviceBuffer Upload(GpuKernels k, float[] host)
    {
        var buffer = k.Allocate(host.Length);
        k.Upload(host, buffer);
        return buffer;
    }

    private static ArrayView<float> View(DeviceBuffer b) => ((GpuBuffer)b).View;
}
