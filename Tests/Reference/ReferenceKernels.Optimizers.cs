using ViTScratch.Kernels;

namespace ViTScratch.Tests.Reference;

// Optimizer steps with PyTorch semantics (torch.optim.AdamW, torch.optim.SGD with dampening 0),
// plus global-norm clipping as torch.nn.utils.clip_grad_norm_: g *= min(1, maxNorm / (‖g‖ + 1e-6)).
public static partial class ReferenceKernels
{
    /// <summary>result[0] (=|+=) Σ x[i]².</summary>
    public static void SumSquares(double[] x, int n, double[] result, bool accumulate)
    {
        double s = 0;
        for (int i = 0; i < n; i++) s += x[i] * x[i];
        result[0] = accumulate ? result[0] + s : s;
    }

    /// <summary>min(1, maxNorm / (sqrt(normSquared) + 1e-6)); 1 when maxNorm ≤ 0 or no norm is given.</summary>
    public static double ClipFactor(double[]? gradNormSq, double maxNorm)
    {
        if (gradNormSq is null || maxNorm <= 0) return 1.0;
        return Math.Min(1.0, maxNorm / (Math.Sqrt(gradNormSq[0]) + 1e-6));
    }

    /// <summary>
    /// One AdamW step: g = clip grad; p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
    /// p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). grad is not modified.
    /// </summary>
    public static void AdamWStep(double[] param, double[] grad, double[] m, double[] v, int n,
        in AdamWArgs args, double[]? gradNormSq, double maxNorm)
    {
        double clip = ClipFactor(gradNormSq, maxNorm);
        double lr = args.Lr, b1 = args.Beta1, b2 = args.Beta2, eps = args.Eps, wd = args.WeightDecay;
        double bc1 = 1 - Math.Pow(b1, args.Step), bc2 = 1 - Math.Pow(b2, args.Step);
        for (int i = 0; i < n; i++)
        {
            double g = grad[i] * clip;
            param[i] *= 1 - lr * wd;
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            double mhat = m[i] / bc1, vhat = v[i] / bc2;
            param[i] -= lr * mhat / (Math.Sqrt(vhat) + eps);
        }
    }

    /// <summary>
    /// One SGD step: g = clip grad + wd p; with momentum μ ≠ 0, buf = g on the first step, else
    /// μ buf + g, and g = Nesterov ? g + μ buf : buf; p -= lr g. With μ = 0 the buffer is untouched.
    /// </summary>
    public static void SgdStep(double[] param, double[] grad, double[] momentum, int n,
        in SgdArgs args, double[]? gradNormSq, double maxNorm)
    {
        double clip = ClipFactor(gradNormSq, maxNorm);
        double mu = args.Momentum;
        for (int i = 0; i < n; i++)
        {
            double g = grad[i] * clip + (double)args.WeightDecay * param[i];
            if (mu != 0)
            {
                double buf = args.FirstStep ? g : mu * momentum[i] + g;
                momentum[i] = buf;
                g = args.Nesterov ? g + mu * buf : buf;
            }
            param[i] -= (double)args.Lr * g;
        }
    }
}
