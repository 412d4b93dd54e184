using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>
/// `ViTPreset.WithSizes` is what `--patch`, `--dim`, `--depth`, `--heads`, `--dim-head` and
/// `--mlp-dim` go through: a positive size replaces exactly its own field, 0 keeps the preset's.
/// Each override on its own, so that one ignored or applied to the wrong field fails (mutation
/// testing found none of them tested one by one; docs/testing.md).
/// </summary>
public class PresetOverrideTests
{
    private static readonly ViTPreset Base = new("base", Dim: 64, Depth: 3, Heads: 2, DimHead: 32, MlpDim: 128, PatchSize: 4);

    [Fact]
    public void ZeroKeepsEveryField() => Assert.Equal(Base, Base.WithSizes());

    [Fact]
    public void EachPositiveSizeReplacesOnlyItsOwnField()
    {
        Assert.Equal(Base with { PatchSize = 7 }, Base.WithSizes(patch: 7));
        Assert.Equal(Base with { Dim = 96 }, Base.WithSizes(dim: 96));
        Assert.Equal(Base with { Depth = 5 }, Base.WithSizes(depth: 5));
        Assert.Equal(Base with { Heads = 6 }, Base.WithSizes(heads: 6));
        Assert.Equal(Base with { DimHead = 16 }, Base.WithSizes(dimHead: 16));
        Assert.Equal(Base with { MlpDim = 256 }, Base.WithSizes(mlpDim: 256));
    }
}
