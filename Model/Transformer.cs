using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>
/// One pre-norm block: x = attn(x) + x; x = ff(x) + x. vit-pytorch keeps the pair in a ModuleList,
/// so the attention is child "0" and the MLP child "1" (transformer.layers.{i}.0 / .1).
/// </summary>
public sealed class TransformerBlock : Module
{
    /// <summary>One encoder block: attention, then the MLP, each with a residual connection.</summary>
    public TransformerBlock(Device device, int dim, int heads, int dimHead, int mlpDim, float dropout, DropoutSeeds seeds)
    {
        Attention = AddChild("0", new Attention(device, dim, heads, dimHead, dropout, seeds));
        FeedForward = AddChild("1", new FeedForward(device, dim, mlpDim, dropout, seeds));
    }

    /// <summary>The attention half.</summary>
    public Attention Attention { get; }
    /// <summary>The MLP half.</summary>
    public FeedForward FeedForward { get; }

    /// <summary>x: [B, N, D] → [B, N, D].</summary>
    public Tensor Forward(Tensor x)
    {
        x = Ops.Add(Attention.Forward(x), x);   // x: [B, N, D]
        return Ops.Add(FeedForward.Forward(x), x);
    }
}

/// <summary>vit-pytorch's Transformer: <c>depth</c> pre-norm blocks, then a final LayerNorm ("norm").</summary>
public sealed class Transformer : Module
{
    private readonly TransformerBlock[] _layers;

    /// <summary><paramref name="depth"/> encoder blocks and a final layer norm.</summary>
    public Transformer(Device device, int dim, int depth, int heads, int dimHead, int mlpDim, float dropout, DropoutSeeds seeds)
    {
        Norm = AddChild("norm", new LayerNorm(device, dim)); // registered first, as in vit-pytorch
        _layers = new TransformerBlock[depth];
        for (int i = 0; i < depth; i++)
            _layers[i] = AddChild($"layers.{i}", new TransformerBlock(device, dim, heads, dimHead, mlpDim, dropout, seeds));
    }

    /// <summary>The layer norm after the last block.</summary>
    public LayerNorm Norm { get; }
    /// <summary>The blocks, first to last.</summary>
    public IReadOnlyList<TransformerBlock> Layers => _layers;

    /// <summary>x: [B, N, D] → [B, N, D].</summary>
    public Tensor Forward(Tensor x)
    {
        if (!Fusions.AddLayerNorm || _layers.Length == 0)
        {
            foreach (var layer in _layers) x = layer.Forward(x); // x: [B, N, D]
            return Norm.Forward(x);
        }
        // The same blocks with each residual add fused with the layer norm that reads its sum
        // next (the MLP's, the next block's attention's, or the final one): one pass over the
        // residual stream instead of an add and a norm that reads the sum back.
        var normed = _layers[0].Attention.Norm.Forward(x);      // normed: [B, N, D]
        for (int i = 0; i < _layers.Length; i++)
        {
            var layer = _layers[i];
            var next = i + 1 < _layers.Length ? _layers[i + 1].Attention.Norm : Norm;
            (x, normed) = AddNorm(layer.Attention.ForwardNormed(normed), x, layer.FeedForward.Norm);
            (x, normed) = AddNorm(layer.FeedForward.ForwardNormed(normed), x, next);
        }
        return normed;
    }

    // (f + x, norm(f + x)): the residual add x = f(x) + x of TransformerBlock and the norm after it.
    private static (Tensor Sum, Tensor Normed) AddNorm(Tensor f, Tensor x, LayerNorm norm) =>
        Ops.AddLayerNorm(f, x, norm.Weight.Value, norm.Bias.Value, LayerNorm.Eps);
}
