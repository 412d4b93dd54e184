using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Model;
using ViTScratch.Training.Commands;

namespace ViTScratch.Tests.Training;

/// <summary>The FLOP count `vit bench` divides by, against the matmuls a forward really runs and the documented step size.</summary>
public class StepCostTests
{
    [Theory]
    [InlineData("vit-micro", 4, 3, 32, 0f)]
    [InlineData("vit-tiny", 4, 3, 32, 0f)]
    [InlineData("vit-micro", 7, 1, 28, 0.5f)]
    public void TheLinearFlopsAreTheMatmulsAForwardRuns(string preset, int patch, int channels, int size, float patchDropout)
    {
        var profiler = new ProfilingKernels(BackendFactory.Create("cpu"));
        using var device = new Device(profiler);
        var config = ViTPresets.Get(preset).WithSizes(patch, 0, 0, 0, 0, 0).ToConfig(channels, size, size, 10, patchDropout: patchDropout) with { Depth = 2 };
        var model = new ViT(config, device, seed: 1);
        const int batch = 3;
        // A training-mode forward keeps patch dropout's tokens; an eval forward all of them.
        foreach (bool training in new[] { true, false })
        {
            if (training) model.Train(); else model.Eval();
            profiler.Reset();
            using (new TensorScope())
                model.Forward(Tensor.FromArray(device, new float[batch * channels * size * size], batch, channels, size, size));
            int tokens = (training && patchDropout > 0 ? model.PatchDropout.Keep : config.NumPatches) + 1;
            Assert.Equal(batch * StepCost.LinearFlops(config, tokens), profiler.Categories["matmul"].Flops, 6);
            // The detail table names each kernel by its IKernels method: two layernorms in the patch
            // embedding (vit-pytorch's), one before each block's attention and MLP, one at the end.
            // Every norm that follows a residual add is fused with it (Engine/Fusions.cs): all but
            // the first block's attention norm, 2·depth of them.
            Assert.Equal(2 + 1, profiler.Kernels["LayerNormForward"].Calls);
            Assert.Equal(2 * config.Depth, profiler.Kernels["AddLayerNormForward"].Calls);
            Assert.Equal(config.Depth, profiler.Kernels["AttentionForward"].Calls);
        }
    }

    // docs/log/2026-performance-log.md measured a vit-tiny training step at batch 128 with the
    // profiler: 88.7 GFLOP in the matmuls (its forward and backward products, which are 3x the
    // forward's but for the patch embedding's input gradient, never computed).
    [Fact]
    public void AVitTinyTrainingStepsMatmulsAreThe88GflopTheProfilerCounted()
    {
        var c = ViTPresets.Tiny.WithSizes(4, 0, 0, 0, 0, 0).ToConfig(3, 32, 32, 10);
        double linear = 3 * 128 * StepCost.LinearFlops(c, c.NumPatches + 1) / 1e9;
        Assert.InRange(linear, 88.7, 88.9);
        Assert.Equal(128 * 6 * 2.0 * 2 * 65 * 65 * 192 / 1e9, 128 * StepCost.AttentionFlops(c, 65) / 1e9, 9); // QKᵀ and PV, 6 layers
    }

    // The memory-bound kernels' efficiency in `vit bench --profile` is bytes moved over a copy's
    // rate; the bytes are the least each call must move, counted by hand here for a few kernels.
    [Fact]
    public void TheProfilerCountsTheBytesEachMemoryBoundKernelMustMove()
    {
        var profiler = new ProfilingKernels(BackendFactory.Create("cpu"));
        IKernels k = profiler;
        using var x = k.Allocate(600);
        using var y = k.Allocate(600);
        using var b = k.Allocate(30);
        using var m = k.Allocate(600);
        using var v = k.Allocate(600);
        k.Fill(x, 1f, 600);                                  // written once: 600 floats
        k.GeluForward(x, y, 600);                            // x read, y written: 1,200
        k.AddBroadcast(x, b, y, 1, 20, 30, 1f);              // x read, y written, b (30) read: 1,230
        k.SumMid(x, b, 1, 20, 30, 1f, accumulate: true);     // x read, b read and written: 660
        k.AdamWStep(x, y, m, v, 600, new AdamWArgs(1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1), null, 0f); // 4 read, 3 written: 4,200
        Assert.Equal(4 * 600.0, profiler.Kernels["Fill"].Bytes);
        Assert.Equal(4 * 1200.0, profiler.Kernels["GeluForward"].Bytes);
        Assert.Equal(4 * 1230.0, profiler.Kernels["AddBroadcast"].Bytes);
        Assert.Equal(4 * 660.0, profiler.Kernels["SumMid"].Bytes);
        Assert.Equal(4 * 4200.0, profiler.Kernels["AdamWStep"].Bytes);
        Assert.Equal(4 * (600 + 1230 + 660.0), profiler.Categories["elementwise"].Bytes + profiler.Categories["data movement"].Bytes);
        Assert.All(profiler.Kernels.Values, e => Assert.Equal(0, e.Flops)); // no flops counted for these
    }

    [Fact]
    public void TheWaitingShareIsWaitOverRunnableTime()
    {
        Assert.Equal(0.25, RunQueueWait.WaitingShare(new(1_000, 500), new(4_000, 1_500)));
        Assert.NotNull(RunQueueWait.Sample()); // Linux exposes it; CI and the project's machines are Linux
    }
}
