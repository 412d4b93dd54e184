using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>torch.nn.Linear: y = x Wᵀ + b with weight [out, in] (decayed) and bias [out] (not decayed).</summary>
public sealed class Linear : Module
{
    /// <summary>A layer from <paramref name="inFeatures"/> to <paramref name="outFeatures"/>: weight truncated-normal, bias (when <paramref name="bias"/>) zero.</summary>
    public Linear(Device device, int inFeatures, int outFeatures, bool bias = true)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = AddParameter("weight", new Parameter(device, [outFeatures, inFeatures], ParameterInit.TruncatedNormal, weightDecay: true));
        if (bias) Bias = AddParameter("bias", new Parameter(device, [outFeatures], ParameterInit.Zeros, weightDecay: false));
    }

    /// <summary>Input width.</summary>
    public int InFeatures { get; }
    /// <summary>Output width.</summary>
    public int OutFeatures { get; }
    /// <summary>The weight, [OutFeatures, InFeatures] as in PyTorch.</summary>
    public Parameter Weight { get; }
    /// <summary>The bias [OutFeatures], or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>x: [..., in] → [..., out].</summary>
    public Tensor Forward(Tensor x) => Ops.Linear(x, Weight.Value, Bias?.Value);
}
