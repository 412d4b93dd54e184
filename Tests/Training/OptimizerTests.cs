using ViTScratch.Engine;
using ViTScratch.Training.Optim;

namespace ViTScratch.Tests.Training;

/// <summary>Optimizers and the schedule against steps computed by hand (the arithmetic is in the comments).</summary>
public class OptimizerTests : IDisposable
{
    private readonly Device _dev = Device.Create("cpu");

    private (Tensor p, OptimParam op) Param(float[] values, bool decay = true)
    {
        var t = Tensor.FromArray(_dev, values, values.Length);
        t.RequiresGrad = true;
        return (t, new OptimParam("w", t, decay));
    }

    private static void SetGrad(Tensor p, params float[] g)
    {
        p.ZeroGrad();
        using var s = new TensorScope();
        var gt = Tensor.FromArray(p.Device, g, g.Length);
        Ops.Sum(Ops.Mul(p, gt)).Backward();   // d/dp sum(p * g) = g
    }

    [Fact]
    public void AdamWTwoStepsByHand()
    {
        // p = 1, lr = 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.01.
        // step 1, g = 0.5:   p ← 1·(1 − 0.001) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25
        //                    p ← 0.999 − 0.1·0.5/0.5 = 0.899
        // step 2, g = −0.25: p ← 0.899·0.999; m = 0.02, v = 0.00031225; m̂ = 0.02/0.19, v̂ = 0.00031225/0.001999
        //                    p ← 0.898101 − 0.1·0.1052632/0.3952254 = 0.8714673
        var (p, op) = Param([1f]);
        var opt = new AdamW([op], weightDecay: 0.01f);
        SetGrad(p, 0.5f); opt.Step(0.1f);
        Assert.Equal(0.899f, p.ToArray()[0], 6);
        SetGrad(p, -0.25f); opt.Step(0.1f);
        Assert.Equal(0.8714673f, p.ToArray()[0], 6);
    }

    [Fact]
    public void AdamWSkipsDecayWhereFlagged()
    {
        // Same first step without decay: p = 1 − 0.1 = 0.9.
        var (p, op) = Param([1f], decay: false);
        var opt = new AdamW([op], weightDecay: 0.5f);
        SetGrad(p, 0.5f); opt.Step(0.1f);
        Assert.Equal(0.9f, p.ToArray()[0], 6);
    }

    [Fact]
    public void SgdMomentumAndNesterovByHand()
    {
        // g = 0.5 twice, lr 0.1, μ 0.9. Plain: b1 = 0.5 → p = 0.95; b2 = 0.95 → p = 0.855.
        // Nesterov: b1 = 0.5, step = 0.5 + 0.45 = 0.95 → p = 0.905; b2 = 0.95, step = 0.5 + 0.855 → p = 0.7695.
        var (p1, o1) = Param([1f]);
        var (p2, o2) = Param([1f]);
        var plain = new Sgd([o1], momentum: 0.9f);
        var nesterov = new Sgd([o2], momentum: 0.9f, nesterov: true);
        for (int s = 0; s < 2; s++)
        {
            SetGrad(p1, 0.5f); plain.Step(0.1f);
            SetGrad(p2, 0.5f); nesterov.Step(0.1f);
        }
        Assert.Equal(0.855f, p1.ToArray()[0], 6);
        Assert.Equal(0.7695f, p2.ToArray()[0], 6);
    }

    [Fact]
    public void SgdWeightDecayIsL2OnTheGradient()
    {
        // g = 0.5 + 0.1·1 = 0.6 → p = 1 − 0.1·0.6 = 0.94 (first step: momentum buffer = g).
        var (p, op) = Param([1f]);
        var opt = new Sgd([op], momentum: 0.9f, weightDecay: 0.1f);
        SetGrad(p, 0.5f); opt.Step(0.1f);
        Assert.Equal(0.94f, p.ToArray()[0], 6);
    }

    [Fact]
    public void ClippingByGlobalNormAcrossParameters()
    {
        // Gradients (3) and (4) in two parameters: global norm 5; max norm 1 → factor 1/5.
        // SGD without momentum, lr 1: p ← p − g/5 → 10 − 0.6 and 10 − 0.8.
        var (a, oa) = Param([10f]);
        var (b, ob) = Param([10f]);
        var opt = new Sgd([oa, ob], momentum: 0f, maxGradNorm: 1f);
        SetGrad(a, 3f); SetGrad(b, 4f);
        opt.Step(1f);
        Assert.Equal(9.4f, a.ToArray()[0], 5);
        Assert.Equal(9.2f, b.ToArray()[0], 5);
        Assert.Equal(25f, opt.LastGradNormSquared(), 4);
    }

    [Fact]
    public void ClippingLeavesSmallGradientsAlone()
    {
        var (a, oa) = Param([1f, 1f]);
        var opt = new Sgd([oa], momentum: 0f, maxGradNorm: 10f);
        SetGrad(a, 0.3f, 0.4f);
        opt.Step(1f);
        Assert.Equal([0.7f, 0.6f], a.ToArray());
    }

    [Fact]
    public void StateRoundTripContinuesExactly()
    {
        var (p, op) = Param([1f, -2f, 0.5f]);
        var opt = new AdamW([op], weightDecay: 0.05f);
        SetGrad(p, 0.1f, 0.2f, -0.3f); opt.Step(0.01f);
        var state = opt.SaveState();
        var saved = p.ToArray();

        SetGrad(p, 0.4f, -0.1f, 0.2f); opt.Step(0.01f);
        var expected = p.ToArray();

        var (q, oq) = Param(saved);
        var resumed = new AdamW([oq], weightDecay: 0.05f);
        resumed.LoadState(state);
        SetGrad(q, 0.4f, -0.1f, 0.2f); resumed.Step(0.01f);
        Assert.Equal(expected, q.ToArray());
    }

    [Fact]
    public void WarmupThenCosine()
    {
        var s = new LrSchedule(1f, WarmupSteps: 10, TotalSteps: 110);
        Assert.Equal(0.1f, s.At(1), 6);
        Assert.Equal(0.5f, s.At(5), 6);
        Assert.Equal(1f, s.At(10), 6);
        Assert.Equal(0.5f, s.At(60), 6);    // halfway through the decay: (1 + cos π/2)/2
        Assert.Equal(0f, s.At(110), 6);
        Assert.Equal(0.25f + 0.75f * 0.5f * (1 + MathF.Cos(MathF.PI * 0.25f)), new LrSchedule(1f, 0, 100, MinLr: 0.25f).At(25), 5);
    }

    // --unmasked-lr: after RestartStep a second cosine from RestartLr to MinLr; before it, the
    // schedule is the one without a restart, step for step.
    [Fact]
    public void ARestartRunsItsOwnCosineAfterItsStep()
    {
        var plain = new LrSchedule(1f, WarmupSteps: 10, TotalSteps: 110, MinLr: 0.01f);
        var restarted = plain with { RestartStep = 90, RestartLr = 0.2f };
        for (int step = 1; step <= 90; step++) Assert.Equal(plain.At(step), restarted.At(step));
        Assert.Equal(0.01f + 0.19f * 0.5f * (1 + MathF.Cos(MathF.PI / 20)), restarted.At(91), 6);
        Assert.Equal(0.01f + 0.19f * 0.5f, restarted.At(100), 6); // halfway through the 20 restarted steps
        Assert.Equal(0.01f, restarted.At(110), 6);
        Assert.Equal(0.2f * 0.5f * (1 + MathF.Cos(MathF.PI / 50)), new LrSchedule(1f, 0, 50, RestartLr: 0.2f).At(1), 6); // restart at step 0: every step
    }

    public void Dispose() => _dev.Dispose();
}
