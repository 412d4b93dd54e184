using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>The tape itself: accumulation, shared subexpressions, no-grad, repeated backward, scopes.</summary>
public class AutogradTests : EngineTestBase
{
    [Fact]
    public void TensorUsedTwiceGetsBothContributions()
    {
        var x = Tensor.FromArray(Dev, [1.5f, -2f, 0.25f], 3);
        x.RequiresGrad = true;
        Ops.Sum(Ops.Mul(x, x)).Backward();             // d/dx sum(x²) = 2x
        Assert.Equal([3f, -4f, 0.5f], x.GradToArray());
    }

    [Fact]
    public void SharedSubexpressionIsBackpropagatedOnce()
    {
        // y = (a + b); L = sum(y * y + 3y): the node y feeds two consumers; dL/da = 2y + 3.
        var a = Tensor.FromArray(Dev, [1f, 2f], 2); a.RequiresGrad = true;
        var b = Tensor.FromArray(Dev, [0.5f, -1f], 2); b.RequiresGrad = true;
        var y = Ops.Add(a, b);
        var loss = Ops.Sum(Ops.Add(Ops.Mul(y, y), Ops.Scale(y, 3f)));
        loss.Backward();
        Assert.Equal([6f, 5f], a.GradToArray());
        Assert.Equal([6f, 5f], b.GradToArray());
    }

    [Fact]
    public void BroadcastBackwardReducesOverRows()
    {
        var x = Rand(4, 3);
        var bias = Tensor.FromArray(Dev, [1f, 2f, 3f], 3); bias.RequiresGrad = true;
        Ops.Sum(Ops.Add(x, bias)).Backward();
        Assert.Equal([4f, 4f, 4f], bias.GradToArray()); // each bias element was used by 4 rows
    }

    [Fact]
    public void NoGradRecordsNothing()
    {
        var x = Rand(2, 2);
        Tensor y;
        using (Tensor.NoGrad()) y = Ops.Mul(x, x);
        Assert.False(y.RequiresGrad);
        Assert.True(y.IsLeaf);
        var err = Assert.Throws<ViTScratchException>(() => Ops.Sum(y).Backward());
        Assert.Contains("does not require a gradient", err.Message);
        Assert.True(Tensor.GradEnabled);
    }

    [Fact]
    public void BackwardTwiceAccumulatesIntoLeavesAsDocumented()
    {
        var x = Tensor.FromArray(Dev, [2f, -1f], 2); x.RequiresGrad = true;
        var loss = Ops.Sum(Ops.Mul(x, x));
        loss.Backward();
        loss.Backward();                                  // leaves accumulate: 2 · 2x
        Assert.Equal([8f, -4f], x.GradToArray());
        x.ZeroGrad();
        loss.Backward();
        Assert.Equal([4f, -2f], x.GradToArray());
    }

    [Fact]
    public void BackwardNeedsAScalar()
    {
        var x = Rand(2, 2);
        var err = Assert.Throws<ViTScratchException>(() => Ops.Mul(x, x).Backward());
        Assert.Contains("[2, 2]", err.Message);
    }

    [Fact]
    public void ScopeReturnsBuffersAndStepsReuseThem()
    {
        var w = Rand(8, 8);
        long missesAfterFirst = 0;
        for (int step = 0; step < 3; step++)
        {
            using (new TensorScope())
            {
                var x = Rand(false, 4, 8);
                var loss = Ops.Mean(Ops.Gelu(Ops.MatMul(x, w, transB: true)));
                loss.Backward();
            }
            if (step == 0) missesAfterFirst = Dev.PoolMisses;
        }
        Assert.Equal(missesAfterFirst, Dev.PoolMisses); // steps 2 and 3 were served from the pool
    }

    [Fact]
    public void TensorFromAnEndedScopeFailsLoudly()
    {
        var x = Rand(3);
        Tensor y;
        using (new TensorScope()) y = Ops.Scale(x, 2f);
        var err = Assert.Throws<ObjectDisposedException>(() => y.ToArray());
        Assert.Contains("TensorScope", err.Message);
    }
}
