using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>Every engine op's backward wiring against finite differences, on ragged shapes.</summary>
public class OpGradientTests : EngineTestBase
{
    // Linear ops: the finite difference is exact but for float32 rounding of the loss (~1e-7 of
    // its magnitude, divided by 2h = 0.2), so 1e-4 relative leaves a wide margin.
    private const float Linear = 1e-4f;

    [Fact] public void AddSameShape() => GradCheck(t => Ops.Add(t[0], t[1]), [Rand(3, 5), Rand(3, 5)], 0.1f, Linear);
    [Fact] public void AddBias() => GradCheck(t => Ops.Add(t[0], t[1]), [Rand(2, 3, 7), Rand(7)], 0.1f, Linear);
    [Fact] public void AddBiasOnTheLeft() => GradCheck(t => Ops.Add(t[1], t[0]), [Rand(2, 3, 7), Rand(7)], 0.1f, Linear);
    [Fact] public void AddPositional() => GradCheck(t => Ops.Add(t[0], t[1]), [Rand(2, 3, 5), Rand(1, 3, 5)], 0.1f, Linear);
    [Fact] public void AddScalar() => GradCheck(t => Ops.Add(t[0], t[1]), [Rand(4, 3), Rand(1)], 0.1f, Linear);
    [Fact] public void SubBias() => GradCheck(t => Ops.Sub(t[0], t[1]), [Rand(3, 9), Rand(9)], 0.1f, Linear);
    [Fact] public void MulSameShape() => GradCheck(t => Ops.Mul(t[0], t[1]), [Rand(5, 3), Rand(5, 3)], 0.1f, Linear);
    [Fact] public void MulBroadcast() => GradCheck(t => Ops.Mul(t[0], t[1]), [Rand(2, 5, 3), Rand(3)], 0.1f, Linear);
    [Fact] public void MulScalar() => GradCheck(t => Ops.Mul(t[0], t[1]), [Rand(6), Rand(1)], 0.1f, Linear);
    [Fact] public void ScaleOp() => GradCheck(t => Ops.Scale(t[0], -1.7f), [Rand(4, 5)], 0.1f, Linear);

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void MatMul2D(bool ta, bool tb) =>
        GradCheck(t => Ops.MatMul(t[0], t[1], ta, tb), [Rand(ta ? [7, 5] : [5, 7]), Rand(tb ? [3, 7] : [7, 3])], 0.1f, Linear);

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void MatMulBatched(bool ta, bool tb) =>
        GradCheck(t => Ops.MatMul(t[0], t[1], ta, tb), [Rand(ta ? [2, 3, 4, 5] : [2, 3, 5, 4]), Rand(tb ? [2, 3, 6, 4] : [2, 3, 4, 6])], 0.1f, Linear);

    [Fact] public void LinearWithoutBias() => GradCheck(t => Ops.Linear(t[0], t[1], null), [Rand(3, 5), Rand(4, 5)], 0.1f, Linear);
    [Fact] public void MatMulFoldedLinear() => GradCheck(t => Ops.MatMul(t[0], t[1], transB: true), [Rand(2, 3, 5), Rand(4, 5)], 0.1f, Linear);
    [Fact] public void LinearWithBias() => GradCheck(t => Ops.Linear(t[0], t[1], t[2]), [Rand(2, 3, 5), Rand(4, 5), Rand(4)], 0.1f, Linear);

    [Fact] public void Reshape() => GradCheck(t => Ops.Reshape(t[0], 3, -1), [Rand(2, 3, 4)], 0.1f, Linear);
    [Fact] public void SplitHeads() => GradCheck(t => Ops.SplitHeads(t[0], 2, 3, columnOffset: 5), [Rand(2, 4, 13)], 0.1f, Linear);
    [Fact] public void MergeHeads() => GradCheck(t => Ops.MergeHeads(t[0]), [Rand(2, 3, 4, 5)], 0.1f, Linear);
    [Fact] public void ExpandBatch() => GradCheck(t => Ops.ExpandBatch(t[0], 3), [Rand(1, 1, 5)], 0.1f, Linear);
    [Fact] public void ConcatTokens() => GradCheck(t => Ops.ConcatTokens(t[0], t[1]), [Rand(2, 1, 5), Rand(2, 4, 5)], 0.1f, Linear);
    [Fact] public void SelectToken() => GradCheck(t => Ops.SelectToken(t[0], 2), [Rand(3, 4, 5)], 0.1f, Linear);
    [Fact] public void GatherTokens() => GradCheck(t => Ops.GatherTokens(t[0], [0, 2, 3, 6]), [Rand(2, 7, 5)], 0.1f, Linear); // runs of 1, 2, 1
    [Fact] public void MeanTokens() => GradCheck(t => Ops.MeanTokens(t[0]), [Rand(3, 7, 5)], 0.1f, Linear);
    [Fact] public void SumAll() => GradCheck(t => Ops.Sum(t[0]), [Rand(3, 7)], 0.1f, Linear);
    [Fact] public void MeanAll() => GradCheck(t => Ops.Mean(t[0]), [Rand(3, 7)], 0.1f, Linear);
    [Fact] public void PatchifyRgb() => GradCheck(t => Ops.Patchify(t[0], 2), [Rand(2, 3, 4, 6)], 0.1f, Linear);
    [Fact] public void PatchifyGray() => GradCheck(t => Ops.Patchify(t[0], 3), [Rand(2, 1, 6, 3)], 0.1f, Linear);
    [Fact] public void Dropout() => GradCheck(t => Ops.Dropout(t[0], 0.3f, 42), [Rand(5, 13)], 0.1f, Linear);

    [Fact] public void Gelu() => GradCheck(t => Ops.Gelu(t[0]), [Rand(3, 11)]);
    [Fact] public void Softmax() => GradCheck(t => Ops.Softmax(t[0]), [Rand(3, 11)]);
    [Fact] public void LogSoftmax() => GradCheck(t => Ops.LogSoftmax(t[0]), [Rand(3, 11)]);
    [Fact] public void LayerNorm() => GradCheck(t => Ops.LayerNorm(t[0], t[1], t[2]), [Rand(4, 9), Rand(9), Rand(9)]);

    // The fused ops (Ops.Fused.cs). AddLayerNorm has two outputs: the loss reads both.
    [Fact] public void LinearGelu() => GradCheck(t => Ops.LinearGelu(t[0], t[1], t[2]), [Rand(2, 3, 5), Rand(9, 5), Rand(9)]);
    [Fact]
    public void AddLayerNorm() => GradCheck(t =>
    {
        var (sum, normed) = Ops.AddLayerNorm(t[0], t[1], t[2], t[3]);
        return Ops.Add(Ops.Scale(sum, 0.7f), normed);
    }, [Rand(2, 3, 9), Rand(2, 3, 9), Rand(9), Rand(9)]);

    [Fact]
    public void CrossEntropyWithSmoothing()
    {
        var labels = Tensor.FromArray(Dev, [2f, 0f, 6f, 3f], 4);
        GradCheck(t => Ops.CrossEntropy(t[0], labels, 0.1f), [Rand(4, 7)]);
    }

    [Fact]
    public void AttentionFused() => GradCheck(t => Ops.Attention(t[0], t[1], t[2], 0.5f), [Rand(2, 2, 5, 3), Rand(2, 2, 5, 3), Rand(2, 2, 5, 3)]);

    [Fact]
    public void AttentionWithDropout() => GradCheck(t => Ops.Attention(t[0], t[1], t[2], 0.5f, 0.2f, 7), [Rand(1, 2, 6, 3), Rand(1, 2, 6, 3), Rand(1, 2, 6, 3)]);

    [Fact]
    public void AttentionUnfused() => GradCheck(t => Ops.AttentionUnfused(t[0], t[1], t[2], 0.5f), [Rand(2, 2, 5, 3), Rand(2, 2, 5, 3), Rand(2, 2, 5, 3)]);

    [Fact]
    public void AttentionPackedHeads() => GradCheck(t => Ops.AttentionPacked(t[0], 2, 3, 0.5f), [Rand(2, 5, 18)]);

    [Fact]
    public void AttentionPackedWithDropout() => GradCheck(t => Ops.AttentionPacked(t[0], 3, 2, 0.5f, 0.2f, 7), [Rand(1, 6, 18)]);

    [Fact]
    public void PackedAttentionIsSplitAttendMerge()
    {
        // The packed op must be exactly the three-op composition it replaces in the model, value and gradient.
        var x = Rand(2, 7, 3 * 2 * 4);
        var packed = Ops.AttentionPacked(x, 2, 4, 0.5f, 0.1f, 3);
        var grad = Rand(false, 2, 7, 8);
        Ops.Sum(Ops.Mul(packed, grad)).Backward();
        var packedOut = packed.ToArray(); var packedGrad = x.GradToArray();

        var y = Tensor.FromArray(Dev, x.ToArray(), x.Shape); y.RequiresGrad = true;
        var q = Ops.SplitHeads(y, 2, 4, 0); var k = Ops.SplitHeads(y, 2, 4, 8); var v = Ops.SplitHeads(y, 2, 4, 16);
        var split = Ops.MergeHeads(Ops.Attention(q, k, v, 0.5f, 0.1f, 3));
        Ops.Sum(Ops.Mul(split, grad)).Backward();
        Assert.Equal(split.ToArray(), packedOut);
        Assert.Equal(y.GradToArray(), packedGrad);
    }

    [Fact]
    public void FusedAttentionMatchesUnfused()
    {
        var q = Rand(2, 3, 9, 4); var k = Rand(2, 3, 9, 4); var v = Rand(2, 3, 9, 4);
        var fused = Ops.Attention(q, k, v, 0.5f).ToArray();
        var unfused = Ops.AttentionUnfused(q, k, v, 0.5f).ToArray();
        for (int i = 0; i < fused.Length; i++) Assert.Equal(unfused[i], fused[i], 5e-6f);
    }
}
