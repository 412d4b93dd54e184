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
    private readonly Tensor[] _m, _v;

    public AdamW(IReadOnlyList<OptimParam> parameters, float weightDecay = 0.05f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float maxGradNorm = 0f) : base(parameters, maxGradNorm)
    {
        WeightDecay = weightDecay; Beta1 = beta1; Beta2 = beta2; Eps = eps;
        _m = parameters.Select(p => StateLike(p.Tensor)).ToArray();
        _v = parameters.Select(p => StateLike(p.Tensor)).ToArray();
    }

    public float WeightDecay { get; }
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }

    protected override void Update(int i, float lr, DeviceBuffer? gradNormSq)
    {
        var p = Params[i];
        var args = new AdamWArgs(lr, Beta1, Beta2, Eps, p.Decay ? WeightDecay : 0f, StepCount);
        K.AdamWStep(p.Tensor.Data, p.Tensor.Grad!, _m[i].Data, _v[i].Data, p.Tensor.Length, args, gradNormSq, MaxGradNorm);
    }

    public override IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        for (int i = 0; i < Params.Count; i++)
        {
            yield return ("adamw.m." + Params[i].Name, _m[i]);
            yield return ("adamw.v." + Params[i].Name, _v[i]);
        }
    }
}
