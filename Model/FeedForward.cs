using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>
/// The MLP of a transformer block, vit-pytorch's FeedForward:
/// net = Sequential(LayerNorm, Linear(dim, hidden), GELU, Dropout, Linear(hidden, dim), Dropout).
/// Children are named by their index in that Sequential (net.0, net.1, net.4) so state_dict names
/// match PyTorch; items 2, 3 and 5 have no parameters.
/// </summary>
public sealed class FeedForward : Module
{
    /// <summary>A pre-norm MLP block: norm, Linear(dim, hidden), GELU, dropout, Linear(hidden, dim), dropout.</summary>
    public FeedForward(Device device, int dim, int hiddenDim, float dropout, DropoutSeeds seeds)
    {
        Norm = AddChild("net.0", new LayerNorm(device, dim));
        Up = AddChild("net.1", new Linear(device, dim, hiddenDim));
        HiddenDropout = AddChild("net.3", new Dropout(dropout, seeds));
        Down = AddChild("net.4", new Linear(device, hiddenDim, dim));
        OutDropout = AddChild("net.5", new Dropout(dropout, seeds));
    }

    /// <summary>The layer norm before the MLP.</summary>
    public LayerNorm Norm { get; }
    /// <summary>The projection to the hidden width.</summary>
    public Linear Up { get; }
    /// <summary>Dropout after the activation.</summary>
    public Dropout HiddenDropout { get; }
    /// <summary>The projection back to the model width.</summary>
    public Linear Down { get; }
    /// <summary>Dropout on the block's output.</summary>
    public Dropout OutDropout { get; }

    /// <summary>x: [B, N, D] → [B, N, D] (the residual is added by the caller).</summary>
    public Tensor Forward(Tensor x) => ForwardNormed(Norm.Forward(x));

    /// <summary>The block after its layer norm: <paramref name="normed"/> is Norm(x), which Transformer fuses with the residual add before it.</summary>
    internal Tensor ForwardNormed(Tensor normed)
    {
        var h = Fusions.LinearGelu && Up.Bias is not null
            ? Ops.LinearGelu(normed, Up.Weight.Value, Up.Bias.Value)   // h: [B, N, hidden], one op
            : Ops.Gelu(Up.Forward(normed));
        h = HiddenDropout.Forward(h);                   // h: [B, N, hidden]
        return OutDropout.Forward(Down.Forward(h));     // [B, N, D]
    }
}
