using ViTScratch.Kernels;

namespace ViTScratch.Engine;

// Matrix products. C = op(A) op(B) with op = identity or transpose, so Linear (x Wᵀ) and every
// backward product run on the stored operands and no transposed copy is ever made:
//   dA  = dC op(B)ᵀ      dB  = op(A)ᵀ dC     (for untransposed operands)
//   dAᵀ = op(B) dCᵀ      dBᵀ = dCᵀ op(A)     (for transposed ones, written into the stored layout)
public static partial class Ops
{
    /// <summary>
    /// a: [..., M, K] (or [..., K, M] with transA), b: [K, N] (or [N, K] with transB) shared by every
    /// leading index of a — the Linear case, run as one [prod(...)·M, K] product — or b: [..., K, N]
    /// with the same leading dims as a (a batched product). Result: [..., M, N].
    /// </summary>
    public static Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false) =>
        Product("MatMul", a, b, transA, transB, null);

    // The product, and with a bias [N] the Linear layer: the kernel adds the bias in the same pass
    // over C, and the backward pass reads dC for the bias gradient directly. (As MatMul + Add, the
    // add cost a pass over C forward and a copy of dC backward, about 5% of a vit-micro CPU step.)
    private static Tensor Product(string op, Tensor a, Tensor b, bool transA, bool transB, Tensor? bias)
    {
        if (a.Rank < 2 || b.Rank < 2) throw ShapeError(op, a, b, "need at least 2 dimensions each");
        int aRows = a.Shape[^2], aCols = a.Shape[^1];
        int m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        int kb = transB ? b.Shape[^1] : b.Shape[^2], n = transB ? b.Shape[^2] : b.Shape[^1];
        if (k != kb)
            throw ShapeError(op, a, b, $"have inner dimensions {k} and {kb} that differ (transA={transA}, transB={transB})");

        int batchA = a.Length / (aRows * aCols);
        MatMulShape shape;
        int[] outShape = (int[])a.Shape.Clone();
        outShape[^2] = m;
        outShape[^1] = n;
        if (b.Rank == 2)
        {
            if (transA && batchA > 1)
                throw ShapeError(op, a, b, "cannot fold a transposed batched left operand into one product; use matching batch dimensions");
            shape = MatMulShape.Single(batchA * m, n, k, transA, transB); // [batch·M, K] x [K, N]
        }
        else
        {
            if (!a.Shape.AsSpan(0, a.Rank - 2).SequenceEqual(b.Shape.AsSpan(0, b.Rank - 2)))
                throw ShapeError(op, a, b, "have different batch dimensions");
            shape = MatMulShape.Batched(batchA, m, n, k, transA, transB);
        }

        if (bias is not null && (bias.Rank != 1 || bias.Length != n))
            throw ShapeError(op, b, bias, $"do not fit: the bias must be [{n}] for {n} output features");
        var c = bias is null ? Result(op, outShape, a, b) : Result(op, outShape, a, b, bias);
        a.Kernels.MatMul(a.Data, b.Data, c.Data, shape, 1f, accumulate: false, bias?.Data);
        OnBackward(c, () =>
        {
            ProductBackward(a, b, c.Grad!, shape);
            if (bias is not null && bias.RequiresGrad)                                       // dbias = column sums of dC
                a.Kernels.SumMid(c.Grad!, bias.Grad!, 1, c.Length / n, n, 1f, Tensor.AccumulateInto(bias));
        });
        return c;
    }

    // dA and dB of C = op(A) op(B) from dC, by the `=` / `+=` rule. In kernel terms: A is [M', K]
    // or [K, M'], B is [K, N] or [N, K], C is [M', N].
    private static void ProductBackward(Tensor a, Tensor b, DeviceBuffer dC, MatMulShape s)
    {
        if (a.RequiresGrad)
        {
            var da = !s.TransA
                ? s with { N = s.K, K = s.N, TransA = false, TransB = !s.TransB, StrideA = s.StrideC, StrideB = s.StrideB, StrideC = s.StrideA }
                : s with { M = s.K, N = s.M, K = s.N, TransA = s.TransB, TransB = true, StrideA = s.StrideB, StrideB = s.StrideC, StrideC = s.StrideA };
            bool acc = Tensor.AccumulateInto(a);
            if (!s.TransA) a.Kernels.MatMul(dC, b.Data, a.Grad!, da, 1f, acc);   // dA = dC op(B)ᵀ
            else a.Kernels.MatMul(b.Data, dC, a.Grad!, da, 1f, acc);             // dAᵀ = op(B) dCᵀ
        }
        if (b.RequiresGrad)
        {
            var db = !s.TransB
                ? s with { M = s.K, K = s.M, TransA = !s.TransA, TransB = false, StrideA = s.StrideA, StrideB = s.StrideC, StrideC = s.StrideB }
                : s with { M = s.N, N = s.K, K = s.M, TransA = true, TransB = s.TransA, StrideA = s.StrideC, StrideB = s.StrideA, StrideC = s.StrideB };
            bool acc = Tensor.AccumulateInto(b);
            if (!s.TransB) a.Kernels.MatMul(a.Data, dC, b.Grad!, db, 1f, acc);   // dB = op(A)ᵀ dC
            else a.Kernels.MatMul(dC, a.Data, b.Grad!, db, 1f, acc);             // dBᵀ = dCᵀ op(A)
        }
    }

    /// <summary>y = x Wᵀ + b, the PyTorch Linear: x: [..., in], weight: [out, in], bias: [out] or null.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (weight.Rank != 2 || x.Shape[^1] != weight.Shape[1])
            throw ShapeError("Linear", x, weight, $"do not fit: the input's last dimension must equal the weight's second ([out, in])");
        return Product("Linear", x, weight, transA: false, transB: true, bias); // y: [..., out]
    }
}
