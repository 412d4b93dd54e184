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
}
