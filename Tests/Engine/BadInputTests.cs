using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>Mismatched shapes throw a ViTScratchException naming the op and both shapes.</summary>
public class BadInputTests : EngineTestBase
{
    public static TheoryData<string, Func<Tensor, Tensor, Tensor>, int[], int[]> Cases => new()
    {
        { "Add", Ops.Add, [2, 3], [4] },
        { "Sub", Ops.Sub, [2, 3], [2, 4] },
        { "Mul", Ops.Mul, [5, 3], [5] },
        { "MatMul", (a, b) => Ops.MatMul(a, b), [2, 3], [4, 5] },
        { "MatMul", (a, b) => Ops.MatMul(a, b), [2, 2, 3], [3, 3, 5] },
        { "Linear", (a, b) => Ops.Linear(a, b, null), [2, 3], [4, 5] },
        { "Linear", (w, bias) => Ops.Linear(Tensor.Zeros(w.Device, 2, 3), w, bias), [4, 3], [5] }, // bias of the wrong length
        { "ConcatTokens", Ops.ConcatTokens, [2, 1, 5], [3, 4, 5] },
        { "Attention", (a, b) => Ops.Attention(a, b, b, 1f), [1, 2, 3, 4], [1, 2, 3, 5] },
        { "LayerNorm", (a, b) => Ops.LayerNorm(a, b, b), [3, 4], [5] },
        { "CrossEntropy", (a, b) => Ops.CrossEntropy(a, b), [3, 4], [2] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MismatchedShapesNameTheOpAndBothShapes(string op, Func<Tensor, Tensor, Tensor> f, int[] sa, int[] sb)
    {
        var err = Assert.Throws<ViTScratchException>(() => f(Rand(sa), Rand(false, sb)));
        Assert.StartsWith(op + ":", err.Message);
        Assert.Contains(ShapeOf.Format(sa), err.Message);
        Assert.Contains(ShapeOf.Format(sb), err.Message);
    }

    [Fact]
    public void ReshapeToTheWrongCountSaysSo()
    {
        var err = Assert.Throws<ViTScratchException>(() => Ops.Reshape(Rand(2, 3), 4, 2));
        Assert.Contains("[2, 3]", err.Message);
        Assert.Contains("[4, 2]", err.Message);
    }

    [Fact]
    public void PatchifyRejectsIndivisibleImages()
    {
        var err = Assert.Throws<ViTScratchException>(() => Ops.Patchify(Rand(1, 3, 10, 10), 4));
        Assert.Contains("10x10", err.Message);
        Assert.Contains("4", err.Message);
    }

    [Theory]
    [InlineData(new[] { 0, 3, 2 })]  // not ascending
    [InlineData(new[] { 1, 1 })]     // repeated
    [InlineData(new[] { 0, 4 })]     // outside the 4 tokens
    [InlineData(new int[0])]         // nothing kept
    public void GatherTokensRejectsBadIndices(int[] tokens)
    {
        var err = Assert.Throws<ViTScratchException>(() => Ops.GatherTokens(Rand(2, 4, 3), tokens));
        Assert.StartsWith("GatherTokens:", err.Message);
    }

    [Fact]
    public void GatherTokensCopiesTheChosenRows()
    {
        var x = Rand(3, 6, 5);
        var y = Ops.GatherTokens(x, [1, 2, 5]).ToArray();
        var v = x.ToArray();
        int[] kept = [1, 2, 5];
        for (int b = 0; b < 3; b++)
            for (int j = 0; j < kept.Length; j++)
                for (int d = 0; d < 5; d++)
                    Assert.Equal(v[(b * 6 + kept[j]) * 5 + d], y[(b * 3 + j) * 5 + d]);
    }
}
