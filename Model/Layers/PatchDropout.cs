using ViTScratch.Engine;
using ViTScratch.Kernels;

namespace ViTScratch.Model;

/// <summary>
/// Patch dropout (Liu et al., "PatchDropout: Economizing Vision Transformers Using Patch Dropout",
/// WACV 2023; timm's patch_drop_rate): in training mode, each step keeps the cls token and a random
/// subset of round((1 − p)·N) patch tokens, after the positional embedding is added, so every kept
/// token still knows where it came from. The transformer then runs on fewer tokens: with p = 0.5 a
/// step costs about half of a full one on the CPU (docs/performance.md), and the missing patches act as a regulariser, like cutout.
/// Evaluation and prediction always see every token.
/// </summary>
/// <remarks>
/// The same tokens are kept for every image of a batch (timm draws them per image). That makes
/// the gather one strided copy per run of kept tokens on any backend, instead of one per image
/// and token; across steps every token position is still dropped equally often. The choice is a
/// function of (model seed, step), like the dropout masks, so resumed runs continue exactly.
/// </remarks>
public sealed class PatchDropout : Module
{
    private readonly DropoutSeeds _seeds;

    /// <summary>Patch dropout: in training keeps a random subset of the patch tokens (always the cls token).</summary>
    public PatchDropout(float p, int numPatches, DropoutSeeds seeds)
    {
        if (p is < 0f or >= 1f) throw new ViTScratchException($"patch dropout {p} must be in [0, 1)");
        P = p;
        NumPatches = numPatches;
        Keep = Math.Clamp((int)MathF.Round((1 - p) * numPatches), 1, numPatches);
        _seeds = seeds;
        Site = seeds.NewSite();
    }

    /// <summary>Fraction of patch tokens left out in training.</summary>
    public float P { get; }
    /// <summary>Patch tokens per image.</summary>
    public int NumPatches { get; }

    /// <summary>Patch tokens kept per training step (the cls token comes on top).</summary>
    public int Keep { get; }

    /// <summary>This layer's dropout site (its mask stream).</summary>
    public int Site { get; }

    /// <summary>
    /// Whether training steps leave patches out (default true). The trainer turns it off for the
    /// last epochs of a run with --unmasked-epochs; evaluation never leaves any out.
    /// </summary>
    public bool Active { get; set; } = true;

    /// <summary>x: [B, 1 + N, D] (cls first) → [B, 1 + Keep, D] in training while <see cref="Active"/>, else unchanged.</summary>
    public Tensor Forward(Tensor x) =>
        Training && Active && Keep < NumPatches ? Ops.GatherTokens(x, KeptTokens(_seeds.SeedFor(Site))) : x;

    /// <summary>Token indices in x to keep, ascending: 0 (cls) and Keep of 1..N, drawn from <paramref name="seed"/>.</summary>
    public int[] KeptTokens(uint seed)
    {
        // A partial Fisher–Yates shuffle of the patch indices: the first Keep slots are a uniform sample.
        var patches = new int[NumPatches];
        for (int i = 0; i < NumPatches; i++) patches[i] = i + 1;
        uint state = seed;
        for (int i = 0; i < Keep; i++)
        {
            state = KernelMath.Mix(state + 0x9E3779B9u);
            int j = i + (int)(state % (uint)(NumPatches - i));
            (patches[i], patches[j]) = (patches[j], patches[i]);
        }
        var kept = new int[Keep + 1];
        patches.AsSpan(0, Keep).CopyTo(kept.AsSpan(1));
        Array.Sort(kept, 1, Keep);
        return kept;
    }
}
