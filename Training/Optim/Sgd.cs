using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Training.Optim;

/// <summary>
/// SGD with momentum, PyTorch semantics: g ← g + wd·p (L2, only for parameters flagged for decay);
/// b ← μ·b + g (b = g on the first step); p ← p − lr·(g + μ·b) with Nesterov, else p − lr·b.
/// </summary>
public sealed class Sgd : Optimizer
{
    private readonly Tensor[] _momentum;            // per-parameter views, for checkpoints
    private readonly DeviceBuffer[] _momentumRange; // the same buffer sliced like Ranges, for the update

    /// <summary>SGD over <paramref name="parameters"/> (see <see cref="OptimParam.From"/>), moving their storage into its flat buffers; <paramref name="maxGradNorm"/> clips the global gradient norm (0 = off).</summary>
    public Sgd(IReadOnlyList<OptimParam> parameters, float momentum = 0.9f, bool nesterov = false, float weightDecay = 0f,
        float maxGradNorm = 0f) : base(parameters, maxGradNorm)
    {
        if (nesterov && momentum <= 0) throw new ViTScratchException("SGD: Nesterov momentum needs a momentum above 0");
        Momentum = momentum; Nesterov = nesterov; WeightDecay = weightDecay;
        (var flat, _momentum) = StateLikeParams();
        _momentumRange = SliceByRange(flat);
    }

    /// <summary>Momentum μ (0 = none).</summary>
    public float Momentum { get; }
    /// <summary>Nesterov momentum.</summary>
    public bool Nesterov { get; }
    /// <summary>L2 weight decay, for the parameters flagged for it.</summary>
    public float WeightDecay { get; }

    private protected override void Update(float lr, DeviceBuffer? gradNormSq)
    {
        for (int r = 0; r < Ranges.Count; r++)
        {
            var range = Ranges[r];
            K.SgdStep(range.Data, range.Grad, _momentumRange[r], range.Length, Args(r, lr), gradNormSq, MaxGradNorm);
        }
    }

    private protected override int ScalarsPerRange => GpuKernels.SgdStepScalarCount;

    private protected override void WriteStepScalars(int range, float lr, Span<float> destination) =>
        GpuKernels.SgdStepScalars(Args(range, lr), destination);

    private protected override void UpdateFromScalars(GpuKernels gpu, IReadOnlyList<DeviceBuffer> stepScalars, DeviceBuffer? gradNormSq)
    {
        for (int r = 0; r < Ranges.Count; r++)
        {
            var range = Ranges[r];
            gpu.SgdStep(range.Data, range.Grad, _momentumRange[r], range.Length, Args(r, 0f), stepScalars[r], gradNormSq, MaxGradNorm);
        }
    }

    private SgdArgs Args(int range, float lr) => new(lr, Momentum, Nesterov, Ranges[range].Decays ? WeightDecay : 0f, FirstStep: StepCount == 1);

    /// <summary>The momentum buffers, "sgd.momentum.NAME" per parameter.</summary>
    public override IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        for (int i = 0; i < Params.Count; i++) yield return ("sgd.momentum." + Params[i].Name, _momentum[i]);
    }
}
