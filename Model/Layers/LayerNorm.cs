using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>torch.nn.LayerNorm over the last axis, eps 1e-5, gain ("weight") ones and shift ("bias") zeros.</summary>
public sealed class LayerNorm : Module
{
    /// <summary>Added to the variance before the square root (PyTorch's default).</summary>
    public const float Eps = 1e-5f;

    /// <summary>Layer normalisation over the last dimension of <paramref name="features"/>, weight 1 and bias 0 at first.</summary>
    public LayerNorm(Device device, int features)
    {
        Features = features;
        Weight = AddParameter("weight", new Parameter(device, [features], ParameterInit.Ones, weightDecay: false));
        Bias = AddParameter("bias", new Parameter(device, [features], ParameterInit.Zeros, weightDecay: false));
    }

    /// <summary>Size of the normalised (last) dimension.</summary>
    public int Features { get; }
    /// <summary>The per-feature scale.</summary>
    public Parameter Weight { get; }
    /// <summary>The per-feature shift.</summary>
    public Parameter Bias { get; }

    /// <summary>x: [..., D] → [..., D].</summary>
    public Tensor Forward(Tensor x) => Ops.LayerNorm(x, Weight.Value, Bias.Value, Eps);
}
