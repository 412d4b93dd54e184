using System.CommandLine;
using System.Diagnostics;
using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Model;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Optim;

namespace ViTScratch.Training.Commands;

/// <summary>
/// `vit bench`: training and inference images/s of a preset on synthetic CIFAR- or MNIST-shaped
/// batches, after a short warm-up, in well under a minute. For the careful numbers use the
/// BenchmarkDotNet project (Benchmarks/); this is the quick check a user runs on their machine.
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        OptionLimit Limit(string property) => TrainOptions.Limits[property];
        var model = Flags.Choice("--model", "the preset", TrainOptions.Choices[nameof(TrainOptions.Model)], "NAME", "vit-micro");
        var batch = Flags.Int("--batch", "images per step", Limit(nameof(TrainOptions.BatchSize)), fallback: 128);
        var input = Flags.Choice("--input", "synthetic 32x32x3 (cifar) or 28x28x1 (mnist) images", ["cifar", "mnist"], fallback: "cifar");
        var device = Flags.Device();
        var precision = Flags.Precision();
        var steps = Flags.Int("--steps", "timed steps after the warm-up", new OptionLimit("steps", 1, 1000), fallback: 5);
        var patch = Flags.Int("--patch", "patch size", Limit(nameof(TrainOptions.Patch)), fallback: 4);
        var dim = Flags.Int("--dim", "model width (overrides the preset's)", Limit(nameof(TrainOptions.Dim)));
        var depth = Flags.Int("--depth", "number of transformer blocks", Limit(nameof(TrainOptions.Depth)));
        var heads = Flags.Int("--heads", "attention heads", Limit(nameof(TrainOptions.Heads)));
        var dimHead = Flags.Int("--dim-head", "width of each head", Limit(nameof(TrainOptions.DimHead)));
        var mlpDim = Flags.Int("--mlp-dim", "width of the MLP", Limit(nameof(TrainOptions.MlpDim)));
        var patchDropout = Flags.Float("--patch-dropout", "time training steps that keep 1 - P of the patch tokens (inference keeps all)",
            Limit(nameof(TrainOptions.PatchDropout)), "P");
        var profile = Flags.Switch("--profile", "add where one training step and one inference forward spend their time, by kernel category");
        var cudaGraph = Flags.CudaGraph();
        var command = new Command("bench", "training steps (forward, backward, AdamW) and inference forwards per second of a preset on " +
                                           "synthetic batches, after a short warm-up")
            { model, batch, input, device, precision, steps, patch, dim, depth, heads, dimHead, mlpDim, patchDropout, profile, cudaGraph };
        command.SetAction(r =>
        {
            string preset = r.GetValue(model)!;
            var sizes = ViTPresets.Get(preset).WithSizes(r.GetValue(patch), r.GetValue(dim), r.GetValue(depth), r.GetValue(heads),
                r.GetValue(dimHead), r.GetValue(mlpDim));
            return Run(preset, sizes, r.GetValue(batch), r.GetValue(input)!, r.GetValue(device)!, r.GetValue(precision)!, r.GetValue(steps),
                r.GetValue(patchDropout), r.GetValue(profile), r.GetValue(cudaGraph), r.InvocationConfiguration.Output);
        });
        return command;
    }

    private static int Run(string preset, ViTPreset sizes, int batch, string input, string deviceName, string precision, int steps,
        float patchDropout, bool profile, bool cudaGraph, TextWriter stdout)
    {
        if (cudaGraph && TrainOptions.CudaGraphProblem(deviceName, dropout: false, patchDropout > 0, mixing: false) is string problem)
            throw new ViTScratchException($"vit bench: {problem}");
        if (cudaGraph && profile)
            throw new ViTScratchException("vit bench: --profile synchronises after every kernel, which a CUDA graph cannot hold; " +
                                          "run --profile and --cuda-graph separately (both print the launches per step)");
        var (c, hw) = input == "cifar" ? (3, 32) : (1, 28);
        var profiler = profile ? new ProfilingKernels(BackendFactory.Create(deviceName)) : null;
        using var device = profiler is null ? Device.Create(deviceName) : new Device(profiler);
        device.Kernels.Precision = TrainOptions.MathPrecisionOf(precision);
        var model = new ViT(sizes.ToConfig(c, hw, hw, 10, patchDropout: patchDropout), device, seed: 0);
        var parameters = OptimParam.From(model);
        var optimizer = new AdamW(parameters, 0.05f, maxGradNorm: 1f);
        var rng = new Random(0);
        var images = new float[batch * c * hw * hw];
        var labels = new float[batch];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < batch; i++) labels[i] = rng.Next(10);

        stdout.WriteLine($"{preset} (patch {sizes.PatchSize}, dim {sizes.Dim}, depth {sizes.Depth}, heads {sizes.Heads}x{sizes.DimHead}, mlp {sizes.MlpDim}), {model.ParameterCount:N0} parameters, batch {batch} of {hw}x{hw}x{c}, device {device.Name}, precision {PrecisionLine(device, precision)}");
        // --cuda-graph: the same step from fixed inputs, with the optimizer's lr and step on the device (Training/CapturedStep.cs).
        using var captured = cudaGraph ? new CapturedStep(device, optimizer, [batch, c, hw, hw], (x, y) =>
        {
            var loss = Ops.Mean(Ops.CrossEntropy(model.Forward(x), y, 0.1f));
            loss.Backward();
            optimizer.StepOnDevice();
            optimizer.ZeroGrad();
            return loss;
        }) : null;
        void TrainStep()
        {
            model.Step++; // patch dropout draws new tokens each step, as in training
            if (captured is not null)
            {
                captured.Run(images, labels, 1e-4f);
                return;
            }
            using var scope = new TensorScope();
            var x = Tensor.Input(device, images, batch, c, hw, hw);
            var y = Tensor.Input(device, labels, batch);
            var loss = Ops.Mean(Ops.CrossEntropy(model.Forward(x), y, 0.1f));
            loss.Backward();
            optimizer.Step(1e-4f);
            optimizer.ZeroGrad();
            loss.Item();
        }
        void InferStep()
        {
            using var scope = new TensorScope();
            using var noGrad = Tensor.NoGrad();
            model.Forward(Tensor.Input(device, images, batch, c, hw, hw)).ToArray();
        }

        var config = model.Config;
        int trainTokens = (patchDropout > 0 ? model.PatchDropout.Keep : config.NumPatches) + 1, inferTokens = config.NumPatches + 1;
        var train = Measure(TrainStep, steps, batch);
        PrintLaunches(stdout, (profiler?.Inner ?? device.Kernels) as GpuKernels, captured, TrainStep);
        if (profiler is not null)
        {
            profiler.Reset();
            for (int i = 0; i < steps; i++) TrainStep();
            PrintProfile(stdout, profiler, steps, "one training step");
        }
        model.Eval();
        var infer = Measure(InferStep, steps, batch);
        if (profiler is not null)
        {
            profiler.Reset();
            for (int i = 0; i < steps; i++) InferStep();
            PrintProfile(stdout, profiler, steps, "one inference forward");
        }
        // The whole step against this CPU's FMA peak, measured now (FmaPeak.cs): the share of the
        // machine's roof the step reaches, comparable across hosts where img/s is not.
        double? peak = device.Kernels is CpuKernels || profiler?.Inner is CpuKernels ? FmaPeak.Measure(allWorkers: true) : null;
        Report(stdout, "training ", train, 3 * StepCost.ForwardFlops(config, trainTokens), peak);
        Report(stdout, "inference", infer, StepCost.ForwardFlops(config, inferTokens), peak);
        double waiting = Math.Max(train.Waiting ?? 0, infer.Waiting ?? 0);
        if (waiting > 0.10)
            stdout.WriteLine($"warning: this process waited for a core {waiting * 100:F0}% of the time it wanted to run (other work on this machine): " +
                             "the figures understate the code; rerun on a quiet machine, and compare runs only side by side");
        return 0;
    }

    // Kernel launches per training step on the ILGPU backends (the number a CUDA graph replaces
    // with one launch): counted over one more, untimed, step. The device script greps "launches/step".
    private static void PrintLaunches(TextWriter stdout, GpuKernels? gpu, CapturedStep? captured, Action step)
    {
        if (gpu is null) return;
        long kernels = gpu.KernelLaunches, graphs = gpu.GraphLaunches;
        step();
        kernels = gpu.KernelLaunches - kernels;
        graphs = gpu.GraphLaunches - graphs;
        if (captured?.Graph is { } graph)
            stdout.WriteLine($"launches/step {kernels + graphs} (CUDA graph: {graphs} graph launch replaying {graph.NodeCount} kernels; " +
                             $"{captured.KernelLaunchesPerStep} kernel launches uncaptured)");
        else if (captured is not null)
            stdout.WriteLine($"launches/step {kernels} (prepared for a CUDA graph, not captured: {gpu.Name} has no graphs)");
        else
            stdout.WriteLine($"launches/step {kernels} kernel launches");
    }

    // The precision the kernels run at, read back from them: the cpu backends compute in fp32 whatever was asked.
    private static string PrecisionLine(Device device, string asked)
    {
        string actual = device.Kernels.Precision.ToString().ToLowerInvariant();
        return actual == asked ? actual : $"{actual} ({asked} asked; {device.Name} computes in fp32)";
    }

    private static void Report(TextWriter stdout, string what, Timing t, double flopsPerImage, double? peak)
    {
        double gflops = t.Median * flopsPerImage / 1e9;
        string share = peak is double p ? $", {gflops / p * 100,3:F0}% of the FMA peak ({p:F0} GFLOP/s, measured now)" : "";
        stdout.WriteLine($"{what} {t.Median,8:F1} img/s (median of {t.Steps}; {t.Low:F1}-{t.High:F1}), {gflops:F1} GFLOP/s{share}");
    }

    /// <summary>Images per second of the timed steps: the median, the slowest and the fastest, and the share of time spent waiting for a core.</summary>
    private sealed record Timing(double Median, double Low, double High, int Steps, double? Waiting);

    // Each category's share of the step and its own efficiency: matmul and attention (flops counted)
    // against the FMA peak, the memory-bound kernels (bytes counted: ProfilingKernels.Entry.Bytes)
    // against a 64 MB copy, both measured now on this machine (CPU backends only).
    private static void PrintProfile(TextWriter stdout, ProfilingKernels profiler, int steps, string what)
    {
        double total = profiler.Categories.Values.Sum(e => e.Seconds);
        bool cpu = profiler.Inner is CpuKernels;
        double? peak = cpu ? FmaPeak.Measure(allWorkers: true) : null, copy = cpu ? CopyRate.Measure() : null;
        stdout.WriteLine($"{what}, by kernel category (each call synchronised; {steps} steps):");
        string roofs = cpu ? $"; roof: the FMA peak {peak:F0} GFLOP/s or a 64 MB copy {copy:F1} GB/s on {Environment.ProcessorCount} threads, measured now" : "";
        stdout.WriteLine($"  {"category",-16} {"ms/step",9} {"share",7} {"calls",7} {"GFLOP/s",9} {"GB/s",7} {"of roof",8}{roofs}");
        foreach (var (name, e) in profiler.Categories.OrderByDescending(kv => kv.Value.Seconds))
            stdout.WriteLine($"  {name,-16} {e.Seconds / steps * 1000,9:F2} {e.Seconds / total * 100,6:F1}% {e.Calls / steps,7} {Rates(e, peak, copy)}");
        stdout.WriteLine($"  {"total",-16} {total / steps * 1000,9:F2}");
        double gemm = profiler.Categories.TryGetValue("matmul", out var m) ? m.Seconds : 0;
        stdout.WriteLine($"  {gemm / total * 100:F1}% of the time runs in matmul kernels");
        if (m is not null && m.Flops > 0 && peak is double p)
        {
            double rate = m.Flops / m.Seconds / 1e9;
            stdout.WriteLine($"  matmul at {rate:F1} GFLOP/s: {rate / p * 100:F0}% of this CPU's FMA peak ({p:F0} GFLOP/s on {Environment.ProcessorCount} threads, measured now)");
        }
        stdout.WriteLine($"the {KernelRows} most expensive kernels (matmuls by shape, M x K · K x N, ᵀ = read transposed):");
        foreach (var (name, e) in profiler.Kernels.OrderByDescending(kv => kv.Value.Seconds).Take(KernelRows))
            stdout.WriteLine($"  {name,-34} {e.Seconds / steps * 1000,9:F2} {e.Seconds / total * 100,6:F1}% {e.Calls / steps,7} {Rates(e, peak, copy)}");
    }

    // "GFLOP/s GB/s of-roof" columns of one entry: the rate it has, and its share of that rate's roof.
    private static string Rates(ProfilingKernels.Entry e, double? peak, double? copy)
    {
        double gflops = e.Flops / e.Seconds / 1e9, gbs = e.Bytes / e.Seconds / 1e9;
        string flopCol = e.Flops > 0 ? $"{gflops,9:F1}" : new string(' ', 9), byteCol = e.Bytes > 0 ? $"{gbs,7:F1}" : new string(' ', 7);
        string roof = e.Flops > 0 && peak is double p ? $"{gflops / p * 100,7:F0}%" : e.Bytes > 0 && copy is double c ? $"{gbs / c * 100,7:F0}%" : "";
        return $"{flopCol} {byteCol} {roof}".TrimEnd();
    }

    private const int KernelRows = 20;

    // Warm-up (JIT, pool, caches), then the median of `steps` timed calls. The warm-up runs for
    // at least 3 calls and 3 seconds: .NET first runs every method as quickly-jitted code and swaps in
    // the optimised version only after ~30 calls and a pause, so a single warm-up call measured the
    // CPU kernels partly unoptimised (vit-micro's step looked 20% slower than it is).
    private static Timing Measure(Action step, int steps, int batch)
    {
        var warm = Stopwatch.StartNew();
        for (int i = 0; i < 3 || warm.Elapsed.TotalSeconds < 3; i++) step();
        var times = new double[steps];
        var before = RunQueueWait.Sample();
        for (int i = 0; i < steps; i++)
        {
            var sw = Stopwatch.StartNew();
            step();
            times[i] = sw.Elapsed.TotalSeconds;
        }
        var after = RunQueueWait.Sample();
        Array.Sort(times);
        double? waiting = before is { } b && after is { } a ? RunQueueWait.WaitingShare(b, a) : null;
        return new Timing(batch / times[steps / 2], batch / times[^1], batch / times[0], steps, waiting);
    }
}
