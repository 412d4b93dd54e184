using ViTScratch.Kernels;

namespace ViTScratch.Engine;

// Two ops of the transformer fused into one, each computing exactly what the pair computes
// (the forward values bit for bit; the bias gradient summed in another order). Internal: the
// model picks them (see Fusions); a user composes Linear, Gelu, Add and LayerNorm.
public static partial class Ops
{
    /// <summary>
    /// GELU(x Wᵀ + b), the MLP's first Linear and its activation. Forward: the matmul adds the bias
    /// in its store, as Linear does, then GELU; the pre-activation is kept for the backward pass,
    /// where GELU' times the incoming gradient and the bias gradient's column sums are one sweep
    /// (IKernels.GeluBiasBackward) instead of a zero-fill, a read-modify-write and a SumMid.
    /// </summary>
    internal static Tensor LinearGelu(Tensor x, Tensor weight, Tensor bias)
    {
        if (x.Rank < 2 || weight.Rank != 2 || x.Shape[^1] != weight.Shape[1])
            throw ShapeError("LinearGelu", x, weight, "do not fit: the input's last dimension must equal the weight's second ([out, in])");
        int n = weight.Shape[0], k = weight.Shape[1], rows = x.Length / Math.Max(k, 1);
        if (bias.Rank != 1 || bias.Length != n)
            throw ShapeError("LinearGelu", weight, bias, $"do not fit: the bias must be [{n}] for {n} output features");
        var shape = MatMulShape.Single(rows, n, k, transA: false, transB: true);
        int[] outShape = (int[])x.Shape.Clone();
        outShape[^1] = n;
        var y = Result("LinearGelu", outShape, x, weight, bias);
        var h = Tensor.Empty(x.Device, outShape);                 // the pre-activation: not a graph node
        x.Kernels.MatMul(x.Data, weight.Data, h.Data, shape, 1f, accumulate: false, bias.Data);
        x.Kernels.GeluForward(h.Data, y.Data, h.Length);
        if (!y.RequiresGrad)
        {
            h.Dispose();                                          // nothing will read it again
            return y;
        }
        OnBackward(y, () =>
        {
            var kern = x.Kernels;
            var dh = x.Device.Rent(h.Length);                     // every element written below
            if (bias.RequiresGrad)
                kern.GeluBiasBackward(h.Data, y.Grad!, dh, bias.Grad!, rows, n, accumulateDx: false, Tensor.AccumulateInto(bias));
            else
            {
                kern.Fill(dh, 0f, h.Length);
                kern.GeluBackward(h.Data, y.Grad!, dh, h.Length);
            }
            ProductBackward(x, weight, dh, shape);
            x.Device.Return(dh);
        });
        return y;
    }

    /// <summary>
    /// The residual add and the LayerNorm after it: sum = a + b and normed = LayerNorm(sum) from one
    /// kernel (IKernels.AddLayerNormForward), so the sum is not read back from memory. Both results
    /// are graph nodes with the gradients of <see cref="Add"/> and <see cref="LayerNorm"/>: the sum
    /// also feeds the next residual add.
    /// </summary>
    internal static (Tensor Sum, Tensor Normed) AddLayerNorm(Tensor a, Tensor b, Tensor gamma, Tensor beta, float eps = 1e-5f)
    {
        if (!ShapeOf.Equal(a.Shape, b.Shape)) throw ShapeError("AddLayerNorm", a, b, "must be the same shape");
        int cols = a.Shape[^1], rows = a.Length / Math.Max(cols, 1);
        CheckNormParams("AddLayerNorm", a, gamma, beta);
        var sum = Result("Add", a.Shape, a, b);
        var y = Result("LayerNorm", a.Shape, sum, gamma, beta);
        var mean = Tensor.Empty(a.Device, Dims(rows));
        var rstd = Tensor.Empty(a.Device, Dims(rows));
        a.Kernels.AddLayerNormForward(a.Data, b.Data, sum.Data, gamma.Data, beta.Data, y.Data, mean.Data, rstd.Data, rows, cols, eps);
        OnBackward(sum, () =>
        {
            if (a.RequiresGrad) a.Kernels.Scale(sum.Grad!, a.Grad!, a.Length, 1f, accumulate: Tensor.AccumulateInto(a));
            if (b.RequiresGrad) a.Kernels.Scale(sum.Grad!, b.Grad!, b.Length, 1f, accumulate: Tensor.AccumulateInto(b));
        });
        OnBackward(y, () => LayerNormBackward(sum, gamma, beta, y, mean, rstd, rows, cols));
        return (sum, y);
    }
}
