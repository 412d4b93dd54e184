namespace ViTScratch.Tests.Reference;

// Row-wise ops over the last axis: softmax, log-softmax, cross-entropy with label smoothing,
// arg-max accuracy. Each row is handled on its own; max-subtraction keeps exp finite.
public static partial class ReferenceKernels
{
    /// <summary>log Σ_j exp(x[start + j]) over <paramref name="count"/> elements, computed stably.</summary>
    public static double LogSumExp(double[] x, int start, int count)
    {
        double max = double.NegativeInfinity;
        for (int j = 0; j < count; j++) max = Math.Max(max, x[start + j]);
        double sum = 0;
        for (int j = 0; j < count; j++) sum += Math.Exp(x[start + j] - max);
        return max + Math.Log(sum);
    }

    /// <summary>y = softmax(x) per row.</summary>
    public static void SoftmaxForward(double[] x, double[] y, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            double lse = LogSumExp(x, r * cols, cols);
            for (int c = 0; c < cols; c++) y[r * cols + c] = Math.Exp(x[r * cols + c] - lse);
        }
    }

    /// <summary>dx += y * (dy - Σ dy * y) per row.</summary>
    public static void SoftmaxBackward(double[] y, double[] dy, double[] dx, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            double dot = 0;
            for (int c = 0; c < cols; c++) dot += dy[r * cols + c] * y[r * cols + c];
            for (int c = 0; c < cols; c++) dx[r * cols + c] += y[r * cols + c] * (dy[r * cols + c] - dot);
        }
    }

    /// <summary>y = x - logsumexp(x) per row.</summary>
    public static void LogSoftmaxForward(double[] x, double[] y, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            double lse = LogSumExp(x, r * cols, cols);
            for (int c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] - lse;
        }
    }

    /// <summary>dx += dy - exp(y) * Σ dy per row.</summary>
    public static void LogSoftmaxBackward(double[] y, double[] dy, double[] dx, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < cols; c++) sum += dy[r * cols + c];
            for (int c = 0; c < cols; c++) dx[r * cols + c] += dy[r * cols + c] - Math.Exp(y[r * cols + c]) * sum;
        }
    }

    /// <summary>The smoothed target of class c in a row labelled <paramref name="label"/>.</summary>
    public static double SmoothedTarget(int c, int label, int classes, double smoothing) =>
        (c == label ? 1.0 - smoothing : 0.0) + smoothing / classes;

    /// <summary>losses[r] = -Σ_c target_c log softmax(logits[r])_c.</summary>
    public static void CrossEntropyForward(double[] logits, double[] labels, double[] losses, int rows, int classes, double smoothing)
    {
        for (int r = 0; r < rows; r++)
        {
            int label = (int)labels[r];
            double lse = LogSumExp(logits, r * classes, classes);
            double loss = 0;
            for (int c = 0; c < classes; c++)
                loss -= SmoothedTarget(c, label, classes, smoothing) * (logits[r * classes + c] - lse);
            losses[r] = loss;
        }
    }

    /// <summary>dlogits[r] += dlosses[r] * (softmax(logits[r]) - target_r).</summary>
    public static void CrossEntropyBackward(double[] logits, double[] labels, double[] dlosses, double[] dlogits, int rows, int classes, double smoothing)
    {
        for (int r = 0; r < rows; r++)
        {
            int label = (int)labels[r];
            double lse = LogSumExp(logits, r * classes, classes);
            for (int c = 0; c < classes; c++)
            {
                double p = Math.Exp(logits[r * classes + c] - lse);
                dlogits[r * classes + c] += dlosses[r] * (p - SmoothedTarget(c, label, classes, smoothing));
            }
        }
    }

    /// <summary>correct[0] += number of rows whose first arg-max equals the label.</summary>
    public static void CountCorrect(double[] logits, double[] labels, double[] correct, int rows, int classes)
    {
        int count = 0;
        for (int r = 0; r < rows; r++)
        {
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (logits[r * classes + c] > logits[r * classes + best]) best = c;
            if (best == (int)labels[r]) count++;
        }
        correct[0] += count;
    }
}
