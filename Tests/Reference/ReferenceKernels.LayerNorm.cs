namespace ViTScratch.Tests.Reference;

// LayerNorm over the last axis: y = (x - mean) rstd gamma + beta, rstd = 1 / sqrt(var + eps),
// var the biased (divide by cols) variance, as torch.nn.LayerNorm.
public static partial class ReferenceKernels
{
    /// <summary>y = (x - mean) * rstd * gamma + beta per row; writes mean[r] and rstd[r].</summary>
    public static void LayerNormForward(double[] x, double[] gamma, double[] beta, double[] y,
        double[] mean, double[] rstd, int rows, int cols, double eps)
    {
        for (int r = 0; r < rows; r++)
        {
            double mu = 0;
            for (int c = 0; c < cols; c++) mu += x[r * cols + c];
            mu /= cols;
            double var = 0;
            for (int c = 0; c < cols; c++) var += (x[r * cols + c] - mu) * (x[r * cols + c] - mu);
            var /= cols;
            double rs = 1.0 / Math.Sqrt(var + eps);
            for (int c = 0; c < cols; c++) y[r * cols + c] = (x[r * cols + c] - mu) * rs * gamma[c] + beta[c];
            mean[r] = mu;
            rstd[r] = rs;
        }
    }

    /// <summary>
    /// With xhat = (x - mean) rstd and g = dy gamma (mean and rstd as saved by the forward pass):
    /// dx += rstd (g - mean_c(g) - xhat mean_c(g xhat)), dgamma += Σ_rows dy xhat, dbeta += Σ_rows dy.
    /// The dx formula is the chain rule through mean and rstd written out; the finite-difference
    /// test checks it.
    /// </summary>
    public static void LayerNormBackward(double[] x, double[] gamma, double[] mean, double[] rstd, double[] dy,
        double[] dx, double[] dgamma, double[] dbeta, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            double meanG = 0, meanGx = 0;
            for (int c = 0; c < cols; c++)
            {
                double xhat = (x[r * cols + c] - mean[r]) * rstd[r];
                double g = dy[r * cols + c] * gamma[c];
                meanG += g;
                meanGx += g * xhat;
            }
            meanG /= cols;
            meanGx /= cols;
            for (int c = 0; c < cols; c++)
            {
                double xhat = (x[r * cols + c] - mean[r]) * rstd[r];
                double g = dy[r * cols + c] * gamma[c];
                dx[r * cols + c] += rstd[r] * (g - meanG - xhat * meanGx);
                dgamma[c] += dy[r * cols + c] * xhat;
                dbeta[c] += dy[r * cols + c];
            }
        }
    }
}
