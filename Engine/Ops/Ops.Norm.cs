namespace ViTScratch.Engine;

public static partial class Ops
{
    /// <summary>LayerNorm over the last axis: x: [..., D], gamma and beta: [D].</summary>
    public static Tensor LayerNorm(Tensor x, Tensor gamma, Tensor beta, float eps = 1e-5f)
    {
        int cols = x.Shape[^1], rows = x.Length / Math.Max(cols, 1);
        CheckNormParams("LayerNorm", x, gamma, beta);
        var y = Result("LayerNorm", x.Shape, x, gamma, beta);
        var mean = Tensor.Empty(x.Device, Dims(rows)); // saved per row for the backward pass
        var rstd = Tensor.Empty(x.Device, Dims(rows));
        x.Kernels.LayerNormForward(x.Data, gamma.Data, beta.Data, y.Data, mean.Data, rstd.Data, rows, cols, eps);
        OnBackward(y, () => LayerNormBackward(x, gamma, beta, y, mean, rstd, rows, cols));
        return y;
    }

    private static void CheckNormParams(string op, Tensor x, Tensor gamma, Tensor beta)
    {
        int cols = x.Shape[^1];
        if (gamma.Rank != 1 || gamma.Length != cols) throw ShapeError(op, x, gamma, "do not fit: gamma must be [D] for x [..., D]");
        if (beta.Rank != 1 || beta.Length != cols) throw ShapeError(op, x, beta, "do not fit: beta must be [D] for x [..., D]");
    }

    private static void LayerNormBackward(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean, Tensor rstd, int rows, int cols)
    {
        // The kernel produces all three gradients at once; inputs that need none get scratch.
        if (x.RequiresGrad) Tensor.ZeroIfUnwritten(x); // the kernel adds into dx
        var dx = x.RequiresGrad ? x.Grad! : Scratch(x).Data;
        var dg = gamma.RequiresGrad ? gamma.Grad! : Scratch(gamma).Data;
        var db = beta.RequiresGrad ? beta.Grad! : Scratch(beta).Data;
        x.Kernels.LayerNormBackward(x.Data, gamma.Data, mean.Data, rstd.Data, y.Grad!, dx, dg, db, rows, cols);
    }

    private static Tensor Scratch(Tensor like)
    {
        var t = Tensor.Empty(like.Device, like.Shape);
        like.Kernels.Fill(t.Data, 0f, t.Length);
        return t;
    }
}
