using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>Attention weights captured for inspection (e.g. attention rollout): softmax(scale q kᵀ) of one layer.</summary>
/// <param name="Shape">[B, H, N, N]: batch, head, query token, key token.</param>
/// <param name="Weights">Row-major values; every row over the last axis sums to 1.</param>
public sealed record AttentionMap(int[] Shape, float[] Weights);

/// <summary>
/// Multi-head self-attention with its pre-norm, vit-pytorch's Attention:
/// x → LayerNorm → to_qkv (no bias) → split q, k, v into heads → softmax(q kᵀ / √d) v, with dropout on
/// the weights → merge heads → to_out (Linear + Dropout). The split, attention and merge are one
/// op, <see cref="Ops.AttentionPacked"/>, which reads the heads in place. to_out is left out (identity) when a single
/// head already has the model width (heads = 1 and dimHead = dim), as in vit-pytorch.
/// </summary>
public sealed class Attention : Module
{
    private readonly DropoutSeeds _seeds;
    private readonly int _attentionDropoutSite;

    /// <summary>A pre-norm multi-head self-attention block of width <paramref name="dim"/>.</summary>
    public Attention(Device device, int dim, int heads, int dimHead, float dropout, DropoutSeeds seeds)
    {
        if (heads <= 0 || dimHead <= 0) throw new ViTScratchException($"attention needs heads ≥ 1 and dim_head ≥ 1 (got heads {heads}, dim_head {dimHead})");
        Heads = heads;
        DimHead = dimHead;
        int inner = heads * dimHead;
        Scale = 1f / MathF.Sqrt(dimHead);
        DropoutP = dropout;
        _seeds = seeds;

        Norm = AddChild("norm", new LayerNorm(device, dim));
        ToQkv = AddChild("to_qkv", new Linear(device, dim, 3 * inner, bias: false));
        _attentionDropoutSite = seeds.NewSite();
        if (!(heads == 1 && dimHead == dim))
        {
            ToOut = AddChild("to_out.0", new Linear(device, inner, dim)); // to_out = Sequential(Linear, Dropout)
            OutDropout = AddChild("to_out.1", new Dropout(dropout, seeds));
        }
    }

    /// <summary>Number of attention heads.</summary>
    public int Heads { get; }
    /// <summary>Width of each head.</summary>
    public int DimHead { get; }
    /// <summary>The score scale, 1/√DimHead.</summary>
    public float Scale { get; }
    /// <summary>Dropout rate on the attention weights and the output.</summary>
    public float DropoutP { get; }
    /// <summary>The layer norm before attention.</summary>
    public LayerNorm Norm { get; }
    /// <summary>The joint query/key/value projection (no bias).</summary>
    public Linear ToQkv { get; }
    /// <summary>The output projection; null when one head as wide as the model makes it the identity.</summary>
    public Linear? ToOut { get; }
    /// <summary>Dropout after the output projection (null with <see cref="ToOut"/>).</summary>
    public Dropout? OutDropout { get; }

    /// <summary>When true, every forward pass also stores this layer's attention weights in <see cref="LastWeights"/>.</summary>
    public bool CaptureWeights { get; set; }

    /// <summary>The weights of the last forward pass with <see cref="CaptureWeights"/> on (before attention dropout).</summary>
    public AttentionMap? LastWeights { get; private set; }

    /// <summary>x: [B, N, D] → [B, N, D] (the residual is added by the caller).</summary>
    public Tensor Forward(Tensor x) => ForwardNormed(Norm.Forward(x));

    /// <summary>The layer after its norm: <paramref name="x"/> is Norm(input), which Transformer fuses with the residual add before it.</summary>
    internal Tensor ForwardNormed(Tensor x)
    {
        int inner = Heads * DimHead;
        var qkv = ToQkv.Forward(x);                         // qkv: [B, N, 3·H·d], chunks q | k | v

        if (CaptureWeights) LastWeights = Weights(qkv, inner);

        float p = Training ? DropoutP : 0f;
        uint seed = p > 0f ? _seeds.SeedFor(_attentionDropoutSite) : 0u;
        // Split into heads, attend, merge heads, in one op: the kernels read q, k, v where to_qkv
        // wrote them and write o with the heads side by side, so no head is ever copied.
        var merged = Ops.AttentionPacked(qkv, Heads, DimHead, Scale, p, seed); // merged: [B, N, H·d]
        if (ToOut is null) return merged;                   // identity to_out: H·d = D
        return OutDropout!.Forward(ToOut.Forward(merged));  // [B, N, D]
    }

    // The fused kernel never writes the N x N weights out, so to look at them we recompute them
    // the plain way, outside autograd, and copy them to the host before the step's scope ends.
    private AttentionMap Weights(Tensor qkv, int inner)
    {
        using var _ = Tensor.NoGrad();
        var q = Ops.SplitHeads(qkv, Heads, DimHead, 0);                 // q: [B, H, N, d]
        var k = Ops.SplitHeads(qkv, Heads, DimHead, inner);             // k: [B, H, N, d]
        var scores = Ops.Scale(Ops.MatMul(q, k, transB: true), Scale); // scores: [B, H, N, N]
        var weights = Ops.Softmax(scores);                              // weights: [B, H, N, N]
        return new AttentionMap((int[])weights.Shape.Clone(), weights.ToArray());
    }
}
