using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>torch.nn.LayerNorm over the last axis, eps 1e-5, gain ("weight") ones and shift ("bias") zeros.</summary>
public sealed class LayerNorm : Module
{
    public const float Eps = 1e-5f;

    public LayerNorm(Device device, int features)
    {
        Features = features;
        Weight = AddParameter("weight", new Parameter(device, [features], ParameterInit.Ones, weightDecay: false));
        Bias = AddParameter("bias", new Parameter(device, [features], ParameterInit.Zeros, weightDecay: false));
    }

    public int Features { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }

    /// <summary>x: [..., D] → [..., D].</summary>
    public Tensor Forward(Tensor x) => Ops.LayerNorm(x, Weight.Value, Bias.Value, Eps);
}
