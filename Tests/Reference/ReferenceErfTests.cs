using ViTScratch.Kernels;
using Xunit;

namespace ViTScratch.Tests.Reference;

/// <summary>The double-precision erf that the reference GELU rests on.</summary>
public class ReferenceErfTests
{
    // Tabulated values (Abramowitz & Stegun Table 7.1 extended; also mpmath to 20 digits).
    [Theory]
    [InlineData(0.1, 0.11246291601828489220)]
    [InlineData(0.5, 0.52049987781304653768)]
    [InlineData(1.0, 0.84270079294971486934)]
    [InlineData(1.5, 0.96610514647531072707)]
    [InlineData(2.0, 0.99532226501895273416)]
    [InlineData(3.0, 0.99997790950300141456)]
    public void Erf_matches_tabulated_values(double x, double expected)
    {
        Assert.Equal(expected, ReferenceErf.Erf(x), 1e-15);
        Assert.Equal(-expected, ReferenceErf.Erf(-x), 1e-15);
    }

    [Theory]
    [InlineData(2.0, 4.6777349810472658379e-3)]
    [InlineData(3.0, 2.2090496998585441373e-5)]
    [InlineData(5.0, 1.5374597944280348502e-12)]
    [InlineData(10.0, 2.0884875837625447570e-45)]
    public void Erfc_keeps_relative_accuracy_in_the_tail(double x, double expected)
    {
        Assert.True(Math.Abs(ReferenceErf.Erfc(x) / expected - 1) < 1e-13, $"erfc({x}) = {ReferenceErf.Erfc(x):R}, expected {expected:R}");
        Assert.Equal(2 - expected, ReferenceErf.Erfc(-x), 1e-15);
    }

    [Fact]
    public void Erf_is_odd_zero_at_zero_and_saturates()
    {
        Assert.Equal(0.0, ReferenceErf.Erf(0.0));
        Assert.Equal(1.0, ReferenceErf.Erf(30.0));
        Assert.Equal(-1.0, ReferenceErf.Erf(-30.0));
        Assert.Equal(0.5, ReferenceErf.Phi(0.0), 1e-16);
    }

    // The two expansions meet at |x| = 2.5; the derivative check across the whole range (and both
    // sides of the switch) would expose a branch that is off by a constant or mis-scaled.
    [Fact]
    public void Erf_derivative_is_two_over_sqrt_pi_exp_minus_x_squared()
    {
        const double h = 1e-5;
        for (double x = -6; x <= 6; x += 0.0625)
        {
            double fd = (ReferenceErf.Erf(x + h) - ReferenceErf.Erf(x - h)) / (2 * h);
            double exact = 2 / Math.Sqrt(Math.PI) * Math.Exp(-x * x);
            Assert.True(Math.Abs(fd - exact) <= 1e-9, $"erf'({x}): fd {fd:R}, exact {exact:R}");
        }
    }

    [Fact]
    public void Erf_is_continuous_at_the_switch_between_expansions()
    {
        double below = ReferenceErf.Erf(Math.BitDecrement(2.5)), above = ReferenceErf.Erf(2.5);
        Assert.True(Math.Abs(above - below) < 1e-15, $"jump of {above - below:G3} at 2.5");
    }

    // The float32 kernels' erf (KernelMath.Erf, A&S 7.1.26) has formula error < 1.5e-7. Evaluated in
    // float32 it also carries rounding: near 0, erf = 1 - poly·e^{-x²} cancels two numbers close to 1,
    // so a few ulps of the ~1-sized product (8 U allowed) become absolute error. Bound: 1.5e-7 + 8 U
    // (measured worst on a 1/4096 grid over [-6, 6]: 4.2e-7 at x = -0.064). The GPU kernels use the same
    // formula, so the backend GELU tolerances build on this constant.
    public const double KernelErfError = 1.5e-7 + 8.0 / (1 << 24);

    [Fact]
    public void Float32_kernel_erf_is_within_its_documented_error()
    {
        for (double x = -6; x <= 6; x += 1.0 / 1024)
        {
            float xf = (float)x;
            double err = Math.Abs(Erf.Of(xf) - ReferenceErf.Erf(xf));
            Assert.True(err <= KernelErfError, $"Erf.Of({xf}) error {err:G3}");
        }
    }
}
