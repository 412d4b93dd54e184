using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>torch.nn.Linear: y = x Wᵀ + b with weight [out, in] (decayed) and bias [out] (not decayed).</summary>
public sealed class Linear : Module
{
    public Linear(Device device, int inFeatures, int outFeatures, bool bias = true)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = AddParameter("weight", new Parameter(device, [outFeatures, inFeatures], ParameterInit.TruncatedNormal, weightDecay: true));
        if (bias) Bias = AddParameter("bias", new Parameter(device, [outFeatures], ParameterInit.Zeros, weightDecay: false));
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Parameter Weight { get; }
    public Parameter? Bias { get; }

    /// <summary>x: [..., in] → [..., out].</summary>
    public Tensor Forward(Tensor x) => Ops.Linear(x, Weight.Value, Bias?.Value);
}
