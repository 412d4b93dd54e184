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

    [Fact]
    public void BackwardTwiceInsideAScopeMatchesOutsideIt()
    {
        // Pooled intermediates hand their gradients back to the pool during Backward; a second
        // Backward of the same graph must still start them from zero.
        var x = Tensor.FromArray(Dev, [2f, -1f, 0.5f], 3); x.RequiresGrad = true;
        using (new TensorScope())
        {
            var y = Ops.Gelu(Ops.Mul(x, x));
            var loss = Ops.Sum(Ops.Mul(y, y));
            loss.Backward();
            var once = x.GradToArray();
            loss.Backward();
            var twice = x.GradToArray();
            for (int i = 0; i < 3; i++) Assert.Equal(2 * once[i], twice[i], 5);
            Assert.Null(y.Grad); // like PyTorch, intermediate gradients are not kept
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FirstWriterOverwritesAndPartialWritersZeroFirstOnDirtyPooledBuffers(bool partialFirst)
    {
        // x is a pooled intermediate with two consumers: SelectToken writes one token's rows of its
        // gradient (so it must zero the rest first), Scale writes all of it (so it may overwrite).
        // Swapping the loss's terms swaps which closure runs first. Each step is a new scope, so from
        // the second step on the rented gradient buffers still hold the previous step's numbers.
        var w = Rand(2, 3, 4);
        for (int step = 0; step < 3; step++)
        {
            using var scope = new TensorScope();
            var x = Ops.Scale(w, 1f);                               // x: [2, 3, 4], pooled
            var partial = Ops.Sum(Ops.SelectToken(x, 1));
            var full = Ops.Sum(Ops.Scale(x, 3f));
            var loss = partialFirst ? Ops.Add(partial, full) : Ops.Add(full, partial);
            w.ZeroGrad();
            loss.Backward();
            var g = w.GradToArray();
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < 3; t++)
                    for (int d = 0; d < 4; d++)
                        Assert.Equal(t == 1 ? 4f : 3f, g[(b * 3 + t) * 4 + d]);
        }
    }

    [Fact]
    public void BackwardHoldsOnlyAFewIntermediateGradientsAtOnce()
    {
        // A chain of 30 same-shaped ops: every activation stays alive until the scope ends, but
        // each gradient goes back to the pool once passed on, so the backward pass needs a handful
        // of gradient buffers, not one per activation (which would be 30 more pool misses).
        const int depth = 30;
        using var dev = Device.Create("cpu"); // its own pool, empty
        var w = Tensor.FromArray(dev, Enumerable.Range(0, 64).Select(i => MathF.Sin(i)).ToArray(), 64);
        w.RequiresGrad = true;                // a leaf, allocated outside the pool
        using (new TensorScope())
        {
            var h = Ops.Scale(w, 1f);
            for (int i = 0; i < depth; i++) h = Ops.Gelu(Ops.Add(h, w));
            long afterForward = dev.PoolMisses;
            Assert.Equal(2 * depth + 1, afterForward); // one buffer per activation
            Ops.Sum(h).Backward();
            long gradientBuffers = dev.PoolMisses - afterForward;
            Assert.True(gradientBuffers <= 4, $"backward created {gradientBuffers} gradient buffers");
        }
    }
}
