using ViTScratch.Kernels;

namespace ViTScratch.Tests.Gpu;

/// <summary>One ILGPU CPU-simulator backend shared by the tests of a class (kernels compile once).</summary>
public sealed class SimulatorFixture : IDisposable
{
    public IKernels K { get; } = BackendFactory.Create("ilgpu-cpu");
    public void Dispose() => K.Dispose();
}

/// <summary>
/// What the GPU-kernel tests on the simulator share: moving data on and off the device,
/// NaN-poisoned `=` outputs (an element no thread wrote fails), float64 expectations, and one
/// tolerance. Close: 4 u terms (|expected| + scale) + 1e-6 with u = 2^-24, the float32 unit
/// roundoff: the classic bound for summing `terms` float32 products, times a 4x margin for the
/// device exp/log (a few ulp) and the erf polynomial (1.5e-7 absolute).
/// </summary>
public abstract class SimulatorTestBase(SimulatorFixture fx) : IClassFixture<SimulatorFixture>
{
    protected readonly IKernels K = fx.K;
    protected const double U = 1.0 / (1 << 24);

    protected static float[] Rand(Random r, int n, float lo = -1f, float hi = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = lo + (float)r.NextDouble() * (hi - lo);
        return a;
    }

    protected DeviceBuffer Up(float[] data)
    {
        var b = K.Allocate(data.Length);
        K.Upload(data, b);
        return b;
    }

    protected DeviceBuffer Poisoned(int n)
    {
        var b = K.Allocate(n);
        K.Fill(b, float.NaN, n);
        return b;
    }

    protected float[] Down(DeviceBuffer b)
    {
        var a = new float[b.Length];
        K.Download(b, a);
        return a;
    }

    protected static double[] Expect(int n, Func<int, double> f)
    {
        var e = new double[n];
        for (int i = 0; i < n; i++) e[i] = f(i);
        return e;
    }

    protected static double Sum(int n, Func<int, double> f)
    {
        double s = 0;
        for (int i = 0; i < n; i++) s += f(i);
        return s;
    }

    protected static void Close(double[] expected, float[] actual, int terms, double scale, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = 4 * U * Math.Max(terms, 4) * (Math.Abs(expected[i]) + scale) + 1e-6;
            Assert.False(double.IsNaN(actual[i]), $"{what}[{i}] is NaN (never written?)");
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R} (tol {tol:E2})");
        }
    }
}
