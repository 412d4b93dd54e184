using ViTScratch.Kernels.Cpu;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// GELU on whichever SIMD width the host accelerates (the Vector256 path on AVX2 machines) plus
/// the scalar tail, against x Phi(x) in float64 with erf from its Taylor series.
///
/// Tolerance: the kernel's erf is Abramowitz-Stegun 7.1.26, |error| &lt; 1.5e-7 absolute, so Phi is
/// off by at most 0.75e-7; exp, the polynomial and the final products add a few float32
/// roundings (8 u, u = 2^-24, relative to each term). Hence
///   |gelu error|  &lt;= |x| (0.75e-7 + 8u) + 4u |y|,
///   |gelu' error| &lt;= 0.75e-7 + 8u (1 + |x phi(x)|), times |dy|, plus one rounding of the `+=`.
/// </summary>
public class CpuGeluTests
{
    private const double U = 1.0 / (1 << 24);

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(1031)]
    public void ForwardAndBackwardMatchFloat64(int n)
    {
        var kern = new CpuKernels();
        var rnd = new Random(n);
        float[] x = new float[n], dy = new float[n], dx0 = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (float)(rnd.NextDouble() * 8 - 4); // [-4, 4] covers the curved part and both tails
            dy[i] = (float)(rnd.NextDouble() * 2 - 1);
            dx0[i] = (float)(rnd.NextDouble() * 2 - 1);
        }
        var X = kern.Allocate(n); var Y = kern.Allocate(n); var DY = kern.Allocate(n); var DX = kern.Allocate(n);
        kern.Upload(x, X); kern.Upload(dy, DY); kern.Upload(dx0, DX);
        kern.GeluForward(X, Y, n);
        kern.GeluBackward(X, DY, DX, n);
        float[] y = new float[n], dx = new float[n];
        kern.Download(Y, y); kern.Download(DX, dx);

        for (int i = 0; i < n; i++)
        {
            double xi = x[i];
            double phiCdf = 0.5 * (1 + ErfSeries(xi / Math.Sqrt(2)));
            double pdf = Math.Exp(-0.5 * xi * xi) / Math.Sqrt(2 * Math.PI);
            double want = xi * phiCdf;
            double tol = Math.Abs(xi) * (0.75e-7 + 8 * U) + 4 * U * Math.Abs(want);
            Assert.True(Math.Abs(y[i] - want) <= tol, $"gelu({xi}) = {y[i]}, want {want}");

            double d = phiCdf + xi * pdf;
            double wantDx = dx0[i] + dy[i] * d;
            double tolDx = Math.Abs(dy[i]) * (0.75e-7 + 8 * U * (1 + Math.Abs(xi * pdf))) + 2 * U * (Math.Abs(dx0[i]) + Math.Abs(dy[i] * d));
            Assert.True(Math.Abs(dx[i] - wantDx) <= tolDx, $"gelu'({xi}): dx = {dx[i]}, want {wantDx}");
        }
    }

    // erf(z) = 2/sqrt(pi) sum_n (-1)^n z^(2n+1) / (n! (2n+1)); for |z| <= 2.9 the largest term is
    // ~e^(z^2) < 5000, so double loses under 1e-12: far below the tolerance.
    private static double ErfSeries(double z)
    {
        double term = z, sum = z;
        for (int n = 1; n < 200 && Math.Abs(term) > 1e-20; n++)
        {
            term *= -z * z / n;
            sum += term / (2 * n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }
}
