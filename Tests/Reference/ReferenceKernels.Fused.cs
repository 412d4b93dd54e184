namespace ViTScratch.Tests.Reference;

// The fused ops of IKernels, written as the two ops they fuse (so the reference says what the
// fusion must equal, not how it is done).
public static partial class ReferenceKernels
{
    /// <summary>t = dy GELU'(x); dx (=|+=) t; dbias (=|+=) Σ_rows t. x, dy, dx: [rows, cols]; dbias: [cols].</summary>
    public static void GeluBiasBackward(double[] x, double[] dy, double[] dx, double[] dbias, int rows, int cols, bool accumulateDx, bool accumulateBias)
    {
        int n = rows * cols;
        var t = new double[n];
        GeluBackward(x, dy, t, n);                                   // t = 0 + dy GELU'(x)
        for (int i = 0; i < n; i++) dx[i] = accumulateDx ? dx[i] + t[i] : t[i];
        SumMid(t, dbias, 1, rows, cols, 1.0, accumulateBias);
    }

    /// <summary>sum = a + b; y = LayerNorm(sum), mean and rstd per row.</summary>
    public static void AddLayerNormForward(double[] a, double[] b, double[] sum, double[] gamma, double[] beta, double[] y,
        double[] mean, double[] rstd, int rows, int cols, double eps)
    {
        AddBroadcast(a, b, sum, rows * cols, 1, 1, 1.0);
        LayerNormForward(sum, gamma, beta, y, mean, rstd, rows, cols, eps);
    }
}
