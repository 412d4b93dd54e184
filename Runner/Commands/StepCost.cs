using ViTScratch.Model;

namespace ViTScratch.Training.Commands;

/// <summary>
/// The arithmetic of a ViT forward pass, counted as `vit bench` and docs/performance.md count it:
/// 2 FLOPs per multiply-add of every matmul (patch embedding, q/k/v, attention's QKᵀ and PV,
/// the output projection, the two MLP layers, the head); elementwise work, softmax and norms are
/// not counted. A training step is taken as 3x its forward (the backward computes two products for
/// each forward one), so its FLOP/s against the FMA peak says how close the whole step runs to
/// the machine's roof.
/// </summary>
public static class StepCost
{
    /// <summary>
    /// FLOPs of the Linear layers' matmuls for one image with <paramref name="tokens"/> tokens in
    /// the transformer (cls included). The patch embedding sees every patch: patch dropout drops
    /// tokens after it.
    /// </summary>
    public static double LinearFlops(ViTConfig c, int tokens)
    {
        double embed = 2.0 * c.NumPatches * c.PatchDim * c.Dim;
        double attentionProjections = 2.0 * tokens * c.Dim * 3 * c.InnerDim + (c.ProjectOut ? 2.0 * tokens * c.InnerDim * c.Dim : 0);
        double mlp = 2.0 * 2 * tokens * c.Dim * c.MlpDim;
        double head = 2.0 * c.Dim * c.NumClasses;
        return embed + c.Depth * (attentionProjections + mlp) + head;
    }

    /// <summary>FLOPs of attention's two products (QKᵀ and PV) for one image.</summary>
    public static double AttentionFlops(ViTConfig c, int tokens) => c.Depth * 2.0 * 2 * tokens * tokens * c.InnerDim;

    public static double ForwardFlops(ViTConfig c, int tokens) => LinearFlops(c, tokens) + AttentionFlops(c, tokens);
}
