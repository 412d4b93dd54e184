using ViTScratch.Engine;
using ViTScratch.Kernels;

namespace ViTScratch.Model;

/// <summary>
/// Where every dropout mask of a model comes from. The engine's dropout mask is a hash of
/// (seed, element index), so a mask is fixed by its seed; this class hands each dropout site a
/// seed derived from (model seed, <see cref="Step"/>, site index). The trainer sets Step once per
/// training step, which makes a run reproducible from its seed and lets a resumed run draw the
/// same masks as an uninterrupted one.
/// </summary>
public sealed class DropoutSeeds(int modelSeed)
{
    private int _sites;

    /// <summary>The model's seed, from which every dropout mask derives.</summary>
    public int ModelSeed { get; } = modelSeed;

    /// <summary>The training step (or any counter): a new value gives every site a new mask.</summary>
    public uint Step { get; set; }

    /// <summary>Reserves the next site index; called once by each dropout site at construction.</summary>
    public int NewSite() => _sites++;

    /// <summary>How many dropout sites have been handed out (each gets its own mask stream).</summary>
    public int SiteCount => _sites;

    /// <summary>The seed of <paramref name="site"/> at the current step: three rounds of a bit mixer so
    /// nearby (step, site) pairs give unrelated seeds.</summary>
    public uint SeedFor(int site) =>
        KernelMath.Mix(KernelMath.Mix(KernelMath.Mix((uint)ModelSeed ^ 0x5BD1E995u) + Step) ^ ((uint)site * 0x9E3779B9u));
}

/// <summary>
/// torch.nn.Dropout (inverted: kept values are scaled by 1/(1-p)). Active only in training mode;
/// in evaluation mode, or with p = 0, it returns its input unchanged.
/// </summary>
public sealed class Dropout : Module
{
    private readonly DropoutSeeds _seeds;

    /// <summary>Dropout with rate <paramref name="p"/>: in training, zeroes each element with that probability and scales the rest by 1/(1−p).</summary>
    public Dropout(float p, DropoutSeeds seeds)
    {
        if (p is < 0f or >= 1f) throw new ViTScratchException($"dropout probability {p} must be in [0, 1)");
        P = p;
        _seeds = seeds;
        Site = seeds.NewSite();
    }

    /// <summary>The drop probability.</summary>
    public float P { get; }

    /// <summary>This site's index among the model's dropout sites (construction order).</summary>
    public int Site { get; }

    /// <summary>x: any shape → same shape.</summary>
    public Tensor Forward(Tensor x) => Training && P > 0f ? Ops.Dropout(x, P, _seeds.SeedFor(Site)) : x;
}
