using ViTScratch.Engine;
using ViTScratch.Kernels;

namespace ViTScratch.Training.Optim;

/// <summary>
/// AdamW (Loshchilov and Hutter), PyTorch semantics: p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + eps) with
/// bias-corrected moments. Decay is decoupled from the gradient and applied only to parameters
/// flagged for it (not to biases, norms, the positional embedding or the cls token).
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly DeviceBuffer _mFlat, _vFlat;
    private readonly Tensor[] _m, _v;   // per-parameter views of the flat moments, for checkpoints

    public AdamW(IReadOnlyList<OptimParam> parameters, float weightDecay = 0.05f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float maxGradNorm = 0f) : base(parameters, maxGradNorm)
    {
        WeightDecay = weightDecay; Beta1 = beta1; Beta2 = beta2; Eps = eps;
        (_mFlat, _m) = StateLikeParams();
        (_vFlat, _v) = StateLikeParams();
    }

    public float WeightDecay { get; }
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }

    protected override void Update(float lr, DeviceBuffer? gradNormSq) => ForEachRange((offset, length, decays) =>
    {
        var args = new AdamWArgs(lr, Beta1, Beta2, Eps, decays ? WeightDecay : 0f, StepCount);
        K.AdamWStep(K.Slice(Flat.Data, offset, length), K.Slice(Flat.Grad, offset, length),
            K.Slice(_mFlat, offset, length), K.Slice(_vFlat, offset, length), length, args, gradNormSq, MaxGradNorm);
    });

    public override IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        for (int i = 0; i < Params.Count; i++)
        {
            yield return ("adamw.m." + Params[i].Name, _m[i]);
            yield return ("adamw.v." + Params[i].Name, _v[i]);
        }
    }
}
