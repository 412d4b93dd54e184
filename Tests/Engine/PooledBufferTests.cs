using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>
/// Ops inside a <see cref="TensorScope"/> get their outputs and intermediate gradients from the
/// device pool, with whatever the last step left there. Every op must give the same values and
/// the same gradients there as on fresh (zeroed) buffers: a forward that adds into its output, or a
/// backward that adds into (or writes part of) an unwritten gradient without zeroing it first,
/// reads garbage. The pool is poisoned first: the same computation on NaN inputs, then eight NaN
/// buffers of every length up to four times the op's sizes. The op's input is an
/// intermediate (x·1), so its gradient is pooled too, and an intermediate's gradient starts
/// unwritten: it must come out the same as the leaf's, which OpGradientTests checks. (Found by mutation testing: flipping a
/// forward's accumulate flag, or deleting a ZeroIfUnwritten call, survived every other test.)
/// </summary>
public class PooledBufferTests : EngineTestBase
{
    private void SameInAPoisonedPool(Func<Tensor, Tensor> op, params int[] shape)
    {
        var x = Rand(shape);
        var w = Rand(false, op(x).Shape);
        Tensor Loss(Tensor leaf) => Ops.Sum(Ops.Mul(op(Ops.Scale(leaf, 1f)), w));

        // The op applied to the leaf itself, the case OpGradientTests checks by finite differences.
        x.ZeroGrad();
        Ops.Sum(Ops.Mul(op(x), w)).Backward();
        var direct = x.GradToArray();

        x.ZeroGrad();
        var fresh = Loss(x);
        fresh.Backward();
        float freshLoss = fresh.Item();
        var freshGrad = x.GradToArray();

        var nan = Tensor.FromArray(Dev, Enumerable.Repeat(float.NaN, x.Length).ToArray(), shape);
        nan.RequiresGrad = true;
        using (new TensorScope()) Loss(nan).Backward();
        // The pool is a stack per length, so put NaN on top of every length the run can rent.
        int longest = Math.Max(x.Length, w.Length) * 4;
        using (new TensorScope())
            for (int length = 1; length <= longest; length++)
                for (int copies = 0; copies < 8; copies++)
                    Ops.Scale(Tensor.FromArray(Dev, Enumerable.Repeat(float.NaN, length).ToArray(), length), 1f);

        x.ZeroGrad();
        float pooledLoss;
        using (new TensorScope())
        {
            var pooled = Loss(x);
            pooled.Backward();
            pooledLoss = pooled.Item();
        }
        Assert.Contains(direct, g => g != 0);
        Assert.Equal(direct, freshGrad); // through x·1 the op's input is an intermediate: same gradient
        Assert.Equal(freshLoss, pooledLoss);
        Assert.Equal(freshGrad, x.GradToArray());
    }

    [Fact] public void Gelu() => SameInAPoisonedPool(Ops.Gelu, 3, 5);
    [Fact] public void Softmax() => SameInAPoisonedPool(Ops.Softmax, 3, 5);
    [Fact] public void LogSoftmax() => SameInAPoisonedPool(Ops.LogSoftmax, 3, 5);
    [Fact] public void Dropout() => SameInAPoisonedPool(x => Ops.Dropout(x, 0.3f, 5), 4, 7);
    [Fact] public void Mul() => SameInAPoisonedPool(x => Ops.Mul(x, x), 3, 5);
    [Fact] public void MulBias() => SameInAPoisonedPool(x => Ops.Mul(x, Ops.Reshape(Ops.SelectToken(Ops.Reshape(x, 1, 6, 5), 1), 5)), 2, 3, 5);
    [Fact] public void Scale() => SameInAPoisonedPool(x => Ops.Scale(x, -2f), 3, 5);
    [Fact] public void Reshape() => SameInAPoisonedPool(x => Ops.Reshape(x, 5, 3), 3, 5);
    [Fact] public void SplitHeads() => SameInAPoisonedPool(x => Ops.SplitHeads(x, 2, 3, columnOffset: 4), 2, 3, 11);
    [Fact] public void MergeHeads() => SameInAPoisonedPool(Ops.MergeHeads, 2, 2, 3, 4);
    [Fact] public void SelectToken() => SameInAPoisonedPool(x => Ops.SelectToken(x, 1), 2, 3, 5);
    [Fact] public void GatherTokens() => SameInAPoisonedPool(x => Ops.GatherTokens(x, [0, 2, 3]), 2, 5, 3);
    [Fact] public void MeanTokens() => SameInAPoisonedPool(Ops.MeanTokens, 2, 4, 3);
    [Fact] public void Sum() => SameInAPoisonedPool(x => Ops.Reshape(Ops.Sum(x), 1), 3, 4);
    [Fact] public void ConcatTokens() => SameInAPoisonedPool(x => Ops.ConcatTokens(x, x), 2, 3, 4);
    [Fact] public void ExpandBatch() => SameInAPoisonedPool(x => Ops.ExpandBatch(x, 3), 1, 2, 4);
    [Fact] public void Linear() => SameInAPoisonedPool(x => Ops.Linear(x, Ops.Reshape(x, 3, 4), Ops.Reshape(Ops.SelectToken(Ops.Reshape(x, 1, 4, 3), 0), 3)), 3, 4);
    [Fact] public void LayerNorm() => SameInAPoisonedPool(x => Ops.LayerNorm(x, Ops.Reshape(Ops.SelectToken(Ops.Reshape(x, 1, 3, 5), 0), 5), Ops.Reshape(Ops.SelectToken(Ops.Reshape(x, 1, 3, 5), 2), 5)), 3, 5);
    [Fact] public void Attention() => SameInAPoisonedPool(x => Ops.Attention(x, Ops.Scale(x, 0.5f), Ops.Scale(x, -1f), 0.5f, 0.2f, 3), 1, 2, 4, 3);
    [Fact]
    public void AttentionOnlyQueryNeedsAGradient()
    {
        var k = Rand(false, 1, 2, 4, 3); var v = Rand(false, 1, 2, 4, 3);
        SameInAPoisonedPool(x => Ops.Attention(x, k, v, 0.5f), 1, 2, 4, 3);
    }
    [Fact] public void AttentionPacked() => SameInAPoisonedPool(x => Ops.AttentionPacked(x, 2, 2, 0.5f, 0.1f, 9), 2, 3, 12);

    [Fact]
    public void CrossEntropy()
    {
        var labels = Tensor.FromArray(Dev, [1f, 0f, 4f], 3);
        SameInAPoisonedPool(x => Ops.CrossEntropy(x, labels, 0.1f), 3, 5);
    }
}
