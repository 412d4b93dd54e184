using ViTScratch.Kernels;

namespace ViTScratch.Tests.Reference;

/// <summary>
/// The float64 reference of every raw op in <see cref="IKernels"/>: same argument order, same
/// shapes, same `=` / `+=` rule (forward ops overwrite, backward ops accumulate, ops with an
/// `accumulate` flag do what it says), operating on double[] instead of device buffers.
///
/// Written for clarity, not speed: plain loops that follow the mathematical definition, one
/// output element at a time, so a reader can check each against the formula in IKernels. Every
/// backward here is itself verified by central finite differences (ReferenceGradientTests), and
/// every backend is checked against these functions (Tests/Kernels).
///
/// Scalars (alpha, eps, p, ...) arrive as double; callers comparing with a float32 backend pass
/// the very float the backend got, widened, so both compute with the same numbers.
/// </summary>
public static partial class ReferenceKernels
{
    // ---- data movement -----------------------------------------------------------------------

    public static void Fill(double[] y, double value, int n)
    {
        for (int i = 0; i < n; i++) y[i] = value;
    }

    /// <summary>y[dst + i0 d0 + i1 d1 + i2 d2 + j] (=|+=) x[src + i0 s0 + i1 s1 + i2 s2 + j].</summary>
    public static void CopyStrided(double[] x, double[] y, in StridedCopy l, bool accumulate)
    {
        for (int i0 = 0; i0 < l.N0; i0++)
            for (int i1 = 0; i1 < l.N1; i1++)
                for (int i2 = 0; i2 < l.N2; i2++)
                    for (int j = 0; j < l.Inner; j++)
                    {
                        double v = x[l.SrcOffset + i0 * l.S0 + i1 * l.S1 + i2 * l.S2 + j];
                        ref double d = ref y[l.DstOffset + i0 * l.D0 + i1 * l.D1 + i2 * l.D2 + j];
                        d = accumulate ? d + v : v;
                    }
    }

    // ---- broadcast: x, y are [outer, mid, inner]; b is [outer, inner] ---------------------------

    /// <summary>y = x + alpha * broadcast(b). y may be x.</summary>
    public static void AddBroadcast(double[] x, double[] b, double[] y, int outer, int mid, int inner, double alpha)
    {
        for (int o = 0; o < outer; o++)
            for (int m = 0; m < mid; m++)
                for (int i = 0; i < inner; i++)
                {
                    int at = (o * mid + m) * inner + i;
                    y[at] = x[at] + alpha * b[o * inner + i];
                }
    }

    /// <summary>y (=|+=) x * broadcast(b). y may be x when not accumulating.</summary>
    public static void MulBroadcast(double[] x, double[] b, double[] y, int outer, int mid, int inner, bool accumulate)
    {
        for (int o = 0; o < outer; o++)
            for (int m = 0; m < mid; m++)
                for (int i = 0; i < inner; i++)
                {
                    int at = (o * mid + m) * inner + i;
                    double v = x[at] * b[o * inner + i];
                    y[at] = accumulate ? y[at] + v : v;
                }
    }

    /// <summary>y[o, i] (=|+=) alpha * Σ_m x[o, m, i].</summary>
    public static void SumMid(double[] x, double[] y, int outer, int mid, int inner, double alpha, bool accumulate)
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                double s = 0;
                for (int m = 0; m < mid; m++) s += x[(o * mid + m) * inner + i];
                y[o * inner + i] = accumulate ? y[o * inner + i] + alpha * s : alpha * s;
            }
    }

    /// <summary>y[o, i] (=|+=) Σ_m x[o, m, i] * w[o, m, i].</summary>
    public static void MulSumMid(double[] x, double[] w, double[] y, int outer, int mid, int inner, bool accumulate)
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                double s = 0;
                for (int m = 0; m < mid; m++)
                {
                    int at = (o * mid + m) * inner + i;
                    s += x[at] * w[at];
                }
                y[o * inner + i] = accumulate ? y[o * inner + i] + s : s;
            }
    }

    /// <summary>y (=|+=) alpha * x.</summary>
    public static void Scale(double[] x, double[] y, int n, double alpha, bool accumulate)
    {
        for (int i = 0; i < n; i++) y[i] = accumulate ? y[i] + alpha * x[i] : alpha * x[i];
    }

    // ---- GELU (exact erf form) -----------------------------------------------------------------

    /// <summary>gelu(x) = x Φ(x).</summary>
    public static double Gelu(double x) => x * ReferenceErf.Phi(x);

    /// <summary>gelu'(x) = Φ(x) + x φ(x).</summary>
    public static double GeluDerivative(double x) => ReferenceErf.Phi(x) + x * ReferenceErf.Pdf(x);

    public static void GeluForward(double[] x, double[] y, int n)
    {
        for (int i = 0; i < n; i++) y[i] = Gelu(x[i]);
    }

    /// <summary>dx += dy * gelu'(x).</summary>
    public static void GeluBackward(double[] x, double[] dy, double[] dx, int n)
    {
        for (int i = 0; i < n; i++) dx[i] += dy[i] * GeluDerivative(x[i]);
    }

    // ---- dropout: the mask is the shared hash, so it is the same bits as every backend's --------

    /// <summary>The multiplier of element i: 1/(1-p) when kept, 0 when dropped.</summary>
    public static double DropoutFactor(uint seed, uint index, float p) =>
        KernelMath.DropoutKeep(seed, index, p) ? 1.0 / (1.0 - p) : 0.0;

    /// <summary>y = x * keep / (1 - p).</summary>
    public static void DropoutForward(double[] x, double[] y, int n, float p, uint seed)
    {
        for (int i = 0; i < n; i++) y[i] = x[i] * DropoutFactor(seed, (uint)i, p);
    }

    /// <summary>dx += dy * keep / (1 - p).</summary>
    public static void DropoutBackward(double[] dy, double[] dx, int n, float p, uint seed)
    {
        for (int i = 0; i < n; i++) dx[i] += dy[i] * DropoutFactor(seed, (uint)i, p);
    }
}
