using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>
/// Every argument check of Engine/Ops, at its boundary: the first invalid value throws one
/// ViTScratchException naming the op, the last valid one runs. (Found by mutation testing: these
/// branches had no test, so inverting a comparison in them survived.)
/// </summary>
public class OpValidationTests : EngineTestBase
{
    private void Rejects(string op, Action call, string? mentions = null)
    {
        var err = Assert.Throws<ViTScratchException>(call);
        Assert.StartsWith(op + ":", err.Message);
        if (mentions is not null) Assert.Contains(mentions, err.Message);
    }

    // A wrong rank gets the rank message, not a later check's (or a kernel reading past the data):
    // deleting these RequireRank calls survived mutation testing.
    [Fact]
    public void WrongRanksAreNamedAsSuch()
    {
        var labels = Tensor.FromArray(Dev, [0f, 1f], 2);
        Rejects("CrossEntropy", () => Ops.CrossEntropy(Rand(2, 3, 1), labels), "rank-2 tensor [B, C]");
        Rejects("CountCorrect", () => Ops.CountCorrect(Rand(2, 3, 1), labels, Tensor.Zeros(Dev, 1)), "rank-2 tensor [B, C]");
        Rejects("SplitHeads", () => Ops.SplitHeads(Rand(2, 12), 2, 3), "rank-3 tensor [B, N, C]");
        Rejects("ConcatTokens", () => Ops.ConcatTokens(Rand(2, 1, 4), Rand(2, 4)), "rank-3 tensor [B, N, D]");
        Rejects("SelectToken", () => Ops.SelectToken(Rand(2, 3, 4, 1), 0), "rank-3 tensor [B, N, D]");
        Rejects("GatherTokens", () => Ops.GatherTokens(Rand(2, 3, 4, 1), [0]), "rank-3 tensor [B, N, D]");
        Rejects("Patchify", () => Ops.Patchify(Rand(3, 8, 8), 4), "rank-4 tensor [B, C, H, W]");
    }

    [Theory, InlineData(-0.01f), InlineData(1f), InlineData(1.5f)]
    public void DropoutProbabilityOutsideZeroToOne(float p)
    {
        Rejects("Dropout", () => Ops.Dropout(Rand(2, 3), p, 1));
        Rejects("Attention", () => Ops.Attention(Rand(1, 1, 2, 2), Rand(1, 1, 2, 2), Rand(1, 1, 2, 2), 1f, p, 1));
        Rejects("AttentionPacked", () => Ops.AttentionPacked(Rand(1, 2, 6), 1, 2, 1f, p, 1));
    }

    [Theory, InlineData(0f), InlineData(0.999f)]
    public void DropoutProbabilityInsideZeroToOneRuns(float p)
    {
        Assert.Equal(6, Ops.Dropout(Rand(2, 3), p, 1).Length);
        Assert.Equal(4, Ops.Attention(Rand(1, 1, 2, 2), Rand(1, 1, 2, 2), Rand(1, 1, 2, 2), 1f, p, 1).Length);
        Assert.Equal(4, Ops.AttentionPacked(Rand(1, 2, 6), 1, 2, 1f, p, 1).Length);
    }

    [Fact]
    public void AttentionShapes()
    {
        Rejects("Attention", () => Ops.Attention(Rand(2, 2, 3), Rand(2, 2, 3), Rand(2, 2, 3), 1f), "rank-4");
        Rejects("Attention", () => Ops.Attention(Rand(1, 2, 3, 4), Rand(1, 2, 3, 4), Rand(1, 2, 4, 4), 1f), "[1, 2, 4, 4]");
        Rejects("AttentionPacked", () => Ops.AttentionPacked(Rand(1, 2, 12), 2, 3, 1f), "[1, 2, 12]");
        Rejects("AttentionPacked", () => Ops.AttentionPacked(Rand(1, 2, 0), 0, 3, 1f));
        Rejects("AttentionPacked", () => Ops.AttentionPacked(Rand(2, 6), 1, 2, 1f), "rank-3");
        // Survivors of the Engine/Ops rerun: the q-vs-k check deleted, dimHead 0 let through.
        Rejects("Attention", () => Ops.Attention(Rand(1, 2, 3, 4), Rand(1, 2, 4, 4), Rand(1, 2, 3, 4), 1f), "(q and k)");
        Rejects("AttentionPacked", () => Ops.AttentionPacked(Rand(1, 2, 0), 2, 0, 1f));
    }

    [Fact]
    public void SplitHeadsColumnsMustFit()
    {
        Assert.Equal(2 * 2 * 4 * 3, Ops.SplitHeads(Rand(2, 4, 10), 2, 3, columnOffset: 4).Length); // columns 4..10: the last that fit
        Rejects("SplitHeads", () => Ops.SplitHeads(Rand(2, 4, 10), 2, 3, columnOffset: 5), "[5, 11)");
        Rejects("SplitHeads", () => Ops.SplitHeads(Rand(2, 4, 10), 2, 3, columnOffset: -1));
        Rejects("MergeHeads", () => Ops.MergeHeads(Rand(2, 4, 10)), "rank-4");
    }

    [Fact]
    public void TokenOpsCheckTheirIndexAndShapes()
    {
        Assert.Equal(2 * 5, Ops.SelectToken(Rand(2, 3, 5), 2).Length);
        Rejects("SelectToken", () => Ops.SelectToken(Rand(2, 3, 5), 3), "token 3");
        Rejects("SelectToken", () => Ops.SelectToken(Rand(2, 3, 5), -1));
        Rejects("ExpandBatch", () => Ops.ExpandBatch(Rand(2, 1, 5), 3), "[2, 1, 5]");
        Assert.Equal(3, Ops.ExpandBatch(Rand(1), 3).Length); // rank 1 is the smallest that has a batch dimension
        Rejects("ConcatTokens", () => Ops.ConcatTokens(Rand(2, 1, 5), Rand(2, 4, 6)), "[2, 4, 6]");
        Rejects("ConcatTokens", () => Ops.ConcatTokens(Rand(2, 5), Rand(2, 4, 5)), "rank-3");
        Rejects("MeanTokens", () => Ops.MeanTokens(Rand(2, 5)), "rank-3");
        Rejects("Patchify", () => Ops.Patchify(Rand(1, 3, 8, 10), 4), "8x10");
    }

    [Fact]
    public void ReshapeInfersOrSaysWhyNot()
    {
        Assert.Equal([4, 3], Ops.Reshape(Rand(2, 6), 4, -1).Shape);
        Assert.Equal([2, 2, 3], Ops.Reshape(Rand(2, 6), -1, 2, 3).Shape);
        Rejects("Reshape", () => Ops.Reshape(Rand(2, 6), 5, -1), "cannot infer");
        Rejects("Reshape", () => Ops.Reshape(Rand(2, 6), 0, -1), "cannot infer");
    }

    [Fact]
    public void MatMulShapes()
    {
        Rejects("MatMul", () => Ops.MatMul(Rand(4), Rand(4, 2)), "at least 2");
        Rejects("MatMul", () => Ops.MatMul(Rand(2, 3, 4), Rand(3, 5), transA: true), "transposed batched");
        Rejects("MatMul", () => Ops.MatMul(Rand(2, 3, 4), Rand(3, 4, 5)), "batch");
        Rejects("MatMul", () => Ops.MatMul(Rand(3, 4), Rand(5, 4), transB: false), "transB=False");
        Assert.Equal([3, 5], Ops.MatMul(Rand(3, 4), Rand(5, 4), transB: true).Shape);
        Assert.Equal([2, 4, 5], Ops.MatMul(Rand(2, 3, 4), Rand(2, 3, 5), transA: true).Shape);
        Rejects("Linear", () => Ops.Linear(Rand(2, 3), Rand(4), null), "[out, in]");
        Rejects("Linear", () => Ops.Linear(Rand(2, 3), Rand(4, 3), Rand(1, 4)), "[4]");
    }

    [Fact]
    public void LossAndNormArguments()
    {
        var labels = Tensor.FromArray(Dev, [0f, 2f], 2);
        Assert.All(Ops.CrossEntropy(Rand(2, 3), labels, 1f).ToArray(), l => Assert.True(float.IsFinite(l))); // smoothing 1 is allowed
        Rejects("CrossEntropy", () => Ops.CrossEntropy(Rand(2, 3), labels, 1.01f), "smoothing");
        Rejects("CrossEntropy", () => Ops.CrossEntropy(Rand(2, 3), labels, -0.01f), "smoothing");
        var gradLabels = Tensor.FromArray(Dev, [0f, 2f], 2); gradLabels.RequiresGrad = true;
        Rejects("CrossEntropy", () => Ops.CrossEntropy(Rand(2, 3), gradLabels), "labels");
        Rejects("CountCorrect", () => Ops.CountCorrect(Rand(2, 3), Tensor.FromArray(Dev, [0f, 1f, 2f], 3), Tensor.Zeros(Dev, 1)));
        Rejects("LayerNorm", () => Ops.LayerNorm(Rand(3, 4), Rand(4), Rand(5)), "beta");
        Rejects("LayerNorm", () => Ops.LayerNorm(Rand(3, 4), Rand(1, 4), Rand(4)), "gamma");
    }

    [Fact]
    public void InputsOnDifferentDevicesAreRejected()
    {
        using var other = Device.Create("cpu");
        var there = Tensor.FromArray(other, [1f, 2f], 2);
        Rejects("Add", () => Ops.Add(Rand(2), there), "different devices");
    }
}
