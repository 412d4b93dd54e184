namespace ViTScratch.Engine;

// Pointwise and row-wise nonlinearities: GELU, softmax, log-softmax, dropout.
public static partial class Ops
{
    /// <summary>GELU, exact erf form: x Φ(x).</summary>
    public static Tensor Gelu(Tensor x)
    {
        var y = Result("Gelu", x.Shape, x);
        x.Kernels.GeluForward(x.Data, y.Data, x.Length);
        OnBackward(y, () => { Tensor.ZeroIfUnwritten(x); x.Kernels.GeluBackward(x.Data, y.Grad!, x.Grad!, x.Length); });
        return y;
    }

    /// <summary>Softmax over the last axis.</summary>
    public static Tensor Softmax(Tensor x)
    {
        int cols = x.Shape[^1], rows = x.Length / Math.Max(cols, 1);
        var y = Result("Softmax", x.Shape, x);
        x.Kernels.SoftmaxForward(x.Data, y.Data, rows, cols);
        OnBackward(y, () => { Tensor.ZeroIfUnwritten(x); x.Kernels.SoftmaxBackward(y.Data, y.Grad!, x.Grad!, rows, cols); });
        return y;
    }

    /// <summary>Log-softmax over the last axis.</summary>
    public static Tensor LogSoftmax(Tensor x)
    {
        int cols = x.Shape[^1], rows = x.Length / Math.Max(cols, 1);
        var y = Result("LogSoftmax", x.Shape, x);
        x.Kernels.LogSoftmaxForward(x.Data, y.Data, rows, cols);
        OnBackward(y, () => { Tensor.ZeroIfUnwritten(x); x.Kernels.LogSoftmaxBackward(y.Data, y.Grad!, x.Grad!, rows, cols); });
        return y;
    }

    /// <summary>
    /// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p).
    /// The mask is a hash of (seed, index), so the backward pass regenerates it and every backend
    /// draws the same one. With p = 0 this is the identity and records nothing.
    /// </summary>
    public static Tensor Dropout(Tensor x, float p, uint seed)
    {
        if (p is < 0f or >= 1f) throw new ViTScratchException($"Dropout: probability {p} must be in [0, 1)");
        if (p == 0f) return x;
        var y = Result("Dropout", x.Shape, x);
        x.Kernels.DropoutForward(x.Data, y.Data, x.Length, p, seed);
        OnBackward(y, () => { Tensor.ZeroIfUnwritten(x); x.Kernels.DropoutBackward(y.Grad!, x.Grad!, x.Length, p, seed); });
        return y;
    }
}
