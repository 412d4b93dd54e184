using ViTScratch.Kernels;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;

namespace ViTScratch.Tests.Reference;

/// <summary>
/// The reference optimizer steps checked against values worked out by hand from the PyTorch
/// update rules (torch.optim.AdamW / SGD documentation), so the reference is not merely
/// self-consistent.
/// </summary>
public class ReferenceOptimizerTests
{
    [Fact]
    public void AdamW_first_step_moves_by_lr_times_sign_of_gradient_after_decay()
    {
        // Step 1: mhat = g, vhat = g², so the update is lr g / (|g| + eps) ≈ lr sign(g).
        var p = new[] { 1.0, -2.0 }; var g = new[] { 0.5, -3.0 }; var m = new double[2]; var v = new double[2];
        var args = new AdamWArgs(Lr: 0.1f, Beta1: 0.9f, Beta2: 0.999f, Eps: 1e-8f, WeightDecay: 0.01f, Step: 1);
        R.AdamWStep(p, g, m, v, 2, args, null, 0);
        double lr = 0.1f, wd = 0.01f, eps = 1e-8f;
        Assert.Equal(1.0 * (1 - lr * wd) - lr * 0.5 / (0.5 + eps), p[0], 1e-12);
        Assert.Equal(-2.0 * (1 - lr * wd) + lr * 3.0 / (3.0 + eps), p[1], 1e-12);
        Assert.Equal((1 - (double)0.9f) * 0.5, m[0], 1e-15);
        Assert.Equal((1 - (double)0.999f) * 9.0, v[1], 1e-15);
        Assert.Equal(new[] { 0.5, -3.0 }, g); // the gradient is not modified
    }

    [Fact]
    public void AdamW_second_step_uses_bias_corrected_moments()
    {
        double b1 = 0.9f, b2 = 0.999f, lr = 0.01f, eps = 1e-8f;
        var p = new[] { 0.3 }; var m = new[] { 0.05 }; var v = new[] { 0.0025 * (1 - b2) };
        var args = new AdamWArgs(0.01f, 0.9f, 0.999f, 1e-8f, 0f, Step: 2);
        R.AdamWStep(p, new[] { -0.2 }, m, v, 1, args, null, 0);
        double m2 = b1 * 0.05 + (1 - b1) * -0.2, v2 = b2 * 0.0025 * (1 - b2) + (1 - b2) * 0.04;
        double expected = 0.3 - lr * (m2 / (1 - b1 * b1)) / (Math.Sqrt(v2 / (1 - b2 * b2)) + eps);
        Assert.Equal(expected, p[0], 1e-14);
    }

    [Fact]
    public void Clipping_scales_the_gradient_by_max_norm_over_norm()
    {
        // ‖g‖ = 5, maxNorm 1: g is scaled by 1 / (5 + 1e-6). SGD without momentum exposes it directly.
        var p = new[] { 0.0, 0.0 }; var g = new[] { 3.0, 4.0 };
        R.SgdStep(p, g, new double[2], 2, new SgdArgs(1f, 0f, false, 0f, true), new[] { 25.0 }, 1.0);
        Assert.Equal(-3.0 / (5 + 1e-6), p[0], 1e-14);
        Assert.Equal(-4.0 / (5 + 1e-6), p[1], 1e-14);
        // Norm below maxNorm, or maxNorm <= 0: no scaling.
        Assert.Equal(1.0, R.ClipFactor(new[] { 25.0 }, 10.0));
        Assert.Equal(1.0, R.ClipFactor(new[] { 25.0 }, 0.0));
    }

    [Fact]
    public void Sgd_momentum_and_nesterov_follow_pytorch()
    {
        double mu = 0.9f, lr = 0.1f, wd = 0.01f;
        // Step 1 (FirstStep): buf = g + wd p; plain momentum steps by lr buf.
        var p = new[] { 1.0 }; var buf = new[] { 123.0 };
        R.SgdStep(p, new[] { 0.5 }, buf, 1, new SgdArgs(0.1f, 0.9f, false, 0.01f, true), null, 0);
        double g1 = 0.5 + wd * 1.0;
        Assert.Equal(g1, buf[0], 1e-15);
        Assert.Equal(1.0 - lr * g1, p[0], 1e-15);
        // Step 2: buf = mu buf + g; Nesterov steps by lr (g + mu buf).
        double p1 = p[0];
        R.SgdStep(p, new[] { -0.25 }, buf, 1, new SgdArgs(0.1f, 0.9f, true, 0.01f, false), null, 0);
        double g2 = -0.25 + wd * p1, b2 = mu * g1 + g2;
        Assert.Equal(b2, buf[0], 1e-15);
        Assert.Equal(p1 - lr * (g2 + mu * b2), p[0], 1e-15);
    }

    [Fact]
    public void Sgd_without_momentum_leaves_the_buffer_alone()
    {
        var p = new[] { 2.0 }; var buf = new[] { 7.0 };
        R.SgdStep(p, new[] { 1.0 }, buf, 1, new SgdArgs(0.5f, 0f, false, 0.1f, false), null, 0);
        Assert.Equal(7.0, buf[0]);
        Assert.Equal(2.0 - 0.5 * (1.0 + (double)0.1f * 2.0), p[0], 1e-15);
    }

    [Fact]
    public void SumSquares_overwrites_or_accumulates()
    {
        var r = new[] { 10.0 };
        R.SumSquares(new[] { 1.0, -2.0, 3.0 }, 2, r, accumulate: false);
        Assert.Equal(5.0, r[0]);
        R.SumSquares(new[] { 1.0, -2.0, 3.0 }, 3, r, accumulate: true);
        Assert.Equal(19.0, r[0]);
    }
}
