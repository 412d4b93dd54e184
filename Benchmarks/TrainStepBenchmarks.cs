using BenchmarkDotNet.Attributes;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Training.Optim;

namespace ViTScratch.Benchmarks;

/// <summary>
/// A whole training step (forward, backward, global-norm clip, AdamW) and an inference forward of
/// vit-micro and vit-tiny on CIFAR-shaped batches of 128, on the CPU backend. Divide 128 by the
/// mean time for images per second; the allocated column is the managed memory one step allocates
/// after warm-up (the activations themselves come from the device pool).
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*TrainStepBenchmarks*' --job short --inProcess
/// </summary>
[MemoryDiagnoser]
public class TrainStepBenchmarks
{
    private const int Batch = 128;
    private Device _device = null!;
    private ViT _model = null!;
    private AdamW _optimizer = null!;
    private float[] _images = null!, _labels = null!;

    [Params("vit-micro", "vit-tiny")]
    public string Preset { get; set; } = "vit-micro";

    [GlobalSetup]
    public void Setup()
    {
        _device = Device.Create("cpu");
        _model = new ViT(ViTPresets.Create(Preset, 3, 32, 32, 10), _device, seed: 0);
        _optimizer = new AdamW(OptimParam.From(_model),
            0.05f, maxGradNorm: 1f);
        var rng = new Random(0);
        _images = Enumerable.Range(0, Batch * 3 * 32 * 32).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        _labels = Enumerable.Range(0, Batch).Select(_ => (float)rng.Next(10)).ToArray();
    }

    [Benchmark]
    public float TrainStep()
    {
        using var scope = new TensorScope();
        var x = Tensor.Input(_device, _images, Batch, 3, 32, 32);   // x: [128, 3, 32, 32]
        var y = Tensor.Input(_device, _labels, Batch);              // y: [128]
        var loss = Ops.Mean(Ops.CrossEntropy(_model.Forward(x), y, 0.1f));
        loss.Backward();
        _optimizer.Step(1e-4f);
        _optimizer.ZeroGrad();
        return loss.Item();
    }

    [Benchmark]
    public float Inference()
    {
        using var scope = new TensorScope();
        using var noGrad = Tensor.NoGrad();
        var logits = _model.Forward(Tensor.Input(_device, _images, Batch, 3, 32, 32)); // logits: [128, 10]
        return logits.ToArray()[0]; // waits for the device; copies 128 x 10 floats
    }

    [GlobalCleanup]
    public void Cleanup() => _device.Dispose();
}
