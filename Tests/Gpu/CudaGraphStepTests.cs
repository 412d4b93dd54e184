using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Model;
using ViTScratch.Tests.TestSupport;
using ViTScratch.Training;
using ViTScratch.Training.Optim;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// --cuda-graph without a GPU (docs/kernels.md, "CUDA graphs"). ILGPU's CPU simulator cannot
/// capture, so these tests run the step's prepared form (Training/CapturedStep.cs: fixed input
/// buffers, the optimizer's lr and step read from the device, the region guarded against
/// allocation, transfers and synchronisation) and show that
/// <list type="bullet">
/// <item>it gives the ordinary step's losses, weights and optimizer state bit for bit, step after step, with a learning rate that changes every step;</item>
/// <item>the region refuses every call a graph cannot hold, and a cold step does make such a call;</item>
/// <item>a step's kernel launches are the same number every step, in both forms;</item>
/// <item>without the CUDA driver, the graph calls give one line, not a DllNotFoundException.</item>
/// </list>
/// On a machine with CUDA, <see cref="CapturedStepMatchesOrdinaryStepOnCuda"/> captures and replays for real.
/// </summary>
public sealed class CudaGraphStepTests(CudaGraphStepTests.Simulator simulator) : IClassFixture<CudaGraphStepTests.Simulator>
{
    /// <summary>One simulator device for the class's step tests: it compiles each kernel once, which is most of their time.</summary>
    public sealed class Simulator : IDisposable
    {
        public Device Device { get; } = Device.Create("ilgpu-cpu");
        public void Dispose() => Device.Dispose();
    }

    // vit-micro's structure at toy size (the simulator runs every GPU thread): 8x8x3 images,
    // 4 patches + cls, 1 block of 2 heads.
    private static ViTConfig Config() =>
        ViTPresets.Create("vit-micro", 3, 8, 8, 5, patchSize: 4) with { Dim = 8, Depth = 1, Heads = 2, DimHead = 4, MlpDim = 16 };

    private const int Batch = 2;
    private static readonly int[] ImageShape = [Batch, 3, 8, 8];

    // Batch s of a run: the same on both sides, different every step.
    private static (float[] Images, float[] Labels) BatchAt(int s)
    {
        var rng = new Random(100 + s);
        var images = Enumerable.Range(0, Batch * 3 * 8 * 8).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var labels = Enumerable.Range(0, Batch).Select(_ => (float)rng.Next(5)).ToArray();
        return (images, labels);
    }

    // A learning rate that changes every step, as a warmup does: a frozen lr (a graph replaying its
    // capture's argument) would change the weights from step 3 on.
    private static float LrAt(int s) => 1e-2f * (s + 1) / 4;

    // A model, AdamW with clipping (the trainer's default) and an accuracy counter on a device that two runs may share (the
    // simulator compiles every kernel once per device, which is most of these tests' time).
    private sealed class Run
    {
        public readonly Device Device;
        public readonly ViT Model;
        public readonly Optimizer Optimizer;
        public readonly Tensor Counter;

        public Run(Device device)
        {
            Device = device;
            Model = new ViT(Config(), Device, seed: 7);
            Optimizer = new AdamW(OptimParam.From(Model), weightDecay: 0.05f, maxGradNorm: 0.5f);
            Counter = Tensor.Zeros(Device, 1);
        }

        public GpuKernels Gpu => (GpuKernels)Device.Kernels;

        // Trainer.TrainStep's device work, in its order.
        public float OrdinaryStep(int s)
        {
            var (images, labels) = BatchAt(s);
            using var scope = new TensorScope();
            var x = Tensor.Input(Device, images, ImageShape);
            var y = Tensor.Input(Device, labels, Batch);
            var logits = Model.Forward(x);
            var loss = Ops.Mean(Ops.CrossEntropy(logits, y, 0.1f));
            loss.Backward();
            Optimizer.Step(LrAt(s));
            Optimizer.ZeroGrad();
            Ops.CountCorrect(logits, y, Counter);
            return loss.Item();
        }

        // Trainer.GraphStep's body.
        public CapturedStep Captured() => new(Device, Optimizer, ImageShape, (x, y) =>
        {
            var logits = Model.Forward(x);
            var loss = Ops.Mean(Ops.CrossEntropy(logits, y, 0.1f));
            loss.Backward();
            Optimizer.StepOnDevice();
            Optimizer.ZeroGrad();
            Ops.CountCorrect(logits, y, Counter);
            return loss;
        });

        public float[] Weights() => Model.NamedParameters().SelectMany(p => p.Parameter.Value.ToArray()).ToArray();

        public float[] State() => Optimizer.SaveState().OrderBy(kv => kv.Key, StringComparer.Ordinal).SelectMany(kv => kv.Value.Values).ToArray();
    }

    private static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}[{i}]: {actual[i]:R} in the graph form, {expected[i]:R} in the ordinary step");
    }

    // Two runs on one device, step by step: the ordinary step, and the graph form (on CUDA, step 1
    // warm, step 2 captured and launched, later steps replays; on the simulator, the prepared form
    // inside a guard-only region). The ordinary run's buffers come from the same pool the graph
    // pinned, as an evaluation between graph steps would. Returns the kernel launches of each
    // ordinary step and of each graph-form step (on CUDA, replays add none).
    private static (long[] Ordinary, long[] Graph, long PoolMissesAfterWarm, long PoolMisses, CapturedStep Captured) PreparedFormMatchesOrdinaryStep(
        Device device, int steps)
    {
        var ordinary = new Run(device);
        var graph = new Run(device);
        var captured = graph.Captured();
        var gpu = (GpuKernels)device.Kernels;
        var lossA = new float[steps];
        var lossB = new float[steps];
        var launchesA = new long[steps];
        var launchesB = new long[steps];
        long missesAfterWarm = 0, misses = 0;
        for (int s = 0; s < steps; s++)
        {
            long before = gpu.KernelLaunches;
            lossA[s] = ordinary.OrdinaryStep(s);
            launchesA[s] = gpu.KernelLaunches - before;
            var (images, labels) = BatchAt(s);
            long missesBefore = device.PoolMisses;
            before = gpu.KernelLaunches;
            lossB[s] = captured.Run(images, labels, LrAt(s));
            launchesB[s] = gpu.KernelLaunches - before;
            if (s == 0) missesAfterWarm = device.PoolMisses;
            else misses += device.PoolMisses - missesBefore;
        }
        AssertSameBits(lossA, lossB, "loss");
        AssertSameBits(ordinary.Weights(), graph.Weights(), "weights");
        AssertSameBits(ordinary.State(), graph.State(), "optimizer state");
        Assert.Equal(ordinary.Counter.Item(), graph.Counter.Item());
        Assert.Equal(ordinary.Optimizer.StepCount, graph.Optimizer.StepCount);
        // The learning rate did change the run: a graph form that froze it would not have matched.
        Assert.NotEqual(lossA[0], lossA[^1]);
        return (launchesA, launchesB, missesAfterWarm, misses, captured);
    }

    [Fact]
    public void PreparedStepMatchesOrdinaryStepBitForBitWithTheSameLaunches()
    {
        // SGD's scalar form is checked kernel against kernel below (OptimizerScalarFormsMatchTheArgumentForms).
        var (ordinary, graph, _, misses, captured) = PreparedFormMatchesOrdinaryStep(simulator.Device, steps: 3);
        // A step is the same kernels every time, in both forms: the count a graph turns into one launch.
        Assert.True(ordinary[0] > 0);
        Assert.All(ordinary, n => Assert.Equal(ordinary[0], n));
        Assert.All(graph, n => Assert.Equal(ordinary[0], n));
        Assert.Equal(ordinary[0], captured.KernelLaunchesPerStep);
        Assert.Equal(0, misses);        // steps 2 and 3 ran inside the region: no new buffer
        Assert.Null(captured.Graph);    // the simulator prepares, never captures
        captured.Dispose();
    }

    [Fact]
    public void OptimizerScalarFormsMatchTheArgumentForms()
    {
        // Each update kernel in both forms over the same values, three steps with a new lr each
        // (SGD's first step takes another branch), with and without clipping: the same bits.
        var gpu = (GpuKernels)simulator.Device.Kernels;
        const int n = 37;
        var rng = new Random(11);
        float[] Values() => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        DeviceBuffer Buffer(float[] v) { var b = gpu.Allocate(v.Length); gpu.Upload(v, b); return b; }
        float[] Read(DeviceBuffer b) { var v = new float[b.Length]; gpu.Download(b, v); return v; }
        var param = Values();
        var grad = Values();
        using var normSq = Buffer([0.7f]);
        using var scalars = gpu.Allocate(GpuKernels.AdamWStepScalarCount);
        var host = new float[GpuKernels.AdamWStepScalarCount];
        foreach (var clip in new float[] { 0f, 0.5f })
        {
            DeviceBuffer pA = Buffer(param), mA = gpu.Allocate(n), vA = gpu.Allocate(n), pB = Buffer(param), mB = gpu.Allocate(n), vB = gpu.Allocate(n), g = Buffer(grad);
            DeviceBuffer sA = Buffer(param), bA = gpu.Allocate(n), sB = Buffer(param), bB = gpu.Allocate(n);
            DeviceBuffer? norm = clip > 0 ? normSq : null;
            for (int step = 1; step <= 3; step++)
            {
                var adamw = new AdamWArgs(LrAt(step), 0.9f, 0.999f, 1e-8f, 0.05f, step);
                gpu.AdamWStep(pA, g, mA, vA, n, adamw, norm, clip);
                GpuKernels.AdamWStepScalars(adamw, host);
                gpu.Upload(host, scalars);
                gpu.AdamWStep(pB, g, mB, vB, n, adamw with { Lr = float.NaN, Step = -1 }, scalars, norm, clip); // only the buffer may carry them
                var sgd = new SgdArgs(LrAt(step), 0.9f, Nesterov: true, 0.01f, FirstStep: step == 1);
                gpu.SgdStep(sA, g, bA, n, sgd, norm, clip);
                GpuKernels.SgdStepScalars(sgd, host);
                gpu.Upload(host, scalars);
                gpu.SgdStep(sB, g, bB, n, sgd with { Lr = float.NaN, FirstStep = !sgd.FirstStep }, scalars, norm, clip);
            }
            AssertSameBits(Read(pA), Read(pB), $"AdamW parameters (clip {clip})");
            AssertSameBits(Read(vA), Read(vB), $"AdamW second moment (clip {clip})");
            AssertSameBits(Read(sA), Read(sB), $"SGD parameters (clip {clip})");
            AssertSameBits(Read(bA), Read(bB), $"SGD momentum (clip {clip})");
            foreach (var b in new[] { pA, mA, vA, pB, mB, vB, g, sA, bA, sB, bB }) b.Dispose();
        }
    }

    [CudaFact]
    public void CapturedStepMatchesOrdinaryStepOnCuda()
    {
        // Step 1 warm, step 2 captured and launched, steps 3-5 replays of the graph.
        using var device = Device.Create("cuda");
        var (ordinary, graph, _, misses, captured) = PreparedFormMatchesOrdinaryStep(device, steps: 5);
        Assert.NotNull(captured.Graph);
        Assert.Equal(ordinary[0], captured.KernelLaunchesPerStep);
        Assert.Equal(ordinary[0], captured.Graph!.NodeCount); // one node per captured launch
        Assert.Equal(4, captured.Graph.Launches);             // steps 2-5
        Assert.Equal([ordinary[0], ordinary[0], 0, 0, 0], graph); // a capture counts its launches once; replays add none
        Assert.Equal(0, misses);
        captured.Dispose();
    }

    [Fact]
    public void RegionRefusesAllocationTransfersAndSynchronisation()
    {
        using var gpu = new GpuKernels(GpuDeviceKind.CpuSimulator);
        var buffer = gpu.Allocate(4);
        using (var region = gpu.BeginRegion(capture: false))
        {
            Assert.True(gpu.InRegion);
            foreach (var (what, call) in new (string, Action)[]
                     {
                         ("allocation", () => gpu.Allocate(8)),
                         ("upload", () => gpu.Upload([1f, 2f], buffer)),
                         ("download", () => gpu.Download(buffer, new float[4])),
                         ("synchronisation", gpu.Synchronize),
                     })
                Assert.Contains(what, Assert.Throws<InvalidOperationException>(call).Message);
            Assert.Throws<InvalidOperationException>(() => gpu.BeginRegion(capture: false)); // no nesting
            gpu.Fill(buffer, 3f, 4); // kernels are what a region is for
            Assert.Equal(1, region.Launches);
            Assert.Null(region.End());
        }
        Assert.False(gpu.InRegion);
        var values = new float[4];
        gpu.Download(buffer, values);
        Assert.Equal([3f, 3f, 3f, 3f], values);
        // The simulator has no graphs: a capturing region is refused, not faked.
        Assert.False(gpu.CanCapture);
        Assert.Contains("cannot capture", Assert.Throws<InvalidOperationException>(() => gpu.BeginRegion(capture: true)).Message);
        // A region left by an exception is abandoned by Dispose, and the backend works again.
        try { using var r = gpu.BeginRegion(capture: false); throw new TimeoutException(); } catch (TimeoutException) { }
        Assert.False(gpu.InRegion);
        gpu.Synchronize();
    }

    [Fact]
    public void AColdStepInsideARegionIsRefused()
    {
        // Without the warm step the pool and the workspaces are empty: the step's first new buffer
        // is an allocation, which the guard (and, on CUDA, the driver) refuses. (A device of its
        // own: the shared one's pool is warm.)
        using var device = Device.Create("ilgpu-cpu");
        var run = new Run(device);
        var (images, labels) = BatchAt(0);
        var x = Tensor.FromArray(run.Device, images, ImageShape);
        var y = Tensor.FromArray(run.Device, labels, Batch);
        run.Optimizer.PrepareDeviceStep(LrAt(0));
        using var scope = new TensorScope();
        using var region = run.Gpu.BeginRegion(capture: false);
        var e = Assert.Throws<InvalidOperationException>(() => Ops.Mean(Ops.CrossEntropy(run.Model.Forward(x), y, 0.1f)).Backward());
        Assert.Contains("allocation", e.Message);
    }

    [Fact]
    public void WithoutTheCudaDriverTheGraphCallsGiveOneLine()
    {
        string library = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        if (System.Runtime.InteropServices.NativeLibrary.TryLoad(library, out var handle))
        {
            System.Runtime.InteropServices.NativeLibrary.Free(handle);
            CudaGraph.RequireDriver(); // a machine with the driver: it loads
            return;
        }
        foreach (var call in new Action[] { CudaGraph.RequireDriver, () => CudaGraph.BeginCapture(new IntPtr(1)), () => CudaGraph.IsCapturing(new IntPtr(1)) })
        {
            var e = Assert.Throws<ViTScratchException>(call);
            Assert.Contains(library, e.Message);
            Assert.Contains("--cuda-graph", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    [Fact]
    public void TheCpuBackendRefusesTheGraphFormInOneLine()
    {
        using var device = Device.Create("cpu");
        var model = new ViT(Config(), device, seed: 7);
        var optimizer = new AdamW(OptimParam.From(model));
        var e = Assert.Throws<ViTScratchException>(() => new CapturedStep(device, optimizer, ImageShape, (x, _) => x));
        Assert.Contains("--cuda-graph needs --device cuda", e.Message);
    }
}
