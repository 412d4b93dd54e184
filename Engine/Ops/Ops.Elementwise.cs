namespace ViTScratch.Engine;

// add, sub, mul, scale with the broadcasts a ViT uses. A broadcast operand b is either the same
// shape as a, a trailing suffix of a's shape (a bias [D] over [B, N, D], a positional embedding
// [N, D] over [B, N, D]), or a single element (a scalar). Leading 1s of b are ignored.
// In kernel terms a is [outer, mid, inner] and b is [outer, inner] repeated along mid; here outer
// is always 1 or b is the same shape, so the backward pass reduces b's gradient over mid.
public static partial class Ops
{
    /// <summary>a + b, elementwise; <paramref name="b"/> may broadcast over leading dimensions of <paramref name="a"/>.</summary>
    public static Tensor Add(Tensor a, Tensor b) => AddScaled("Add", a, b, 1f);

    /// <summary>a − b, elementwise, with the broadcasting of <see cref="Add"/>.</summary>
    public static Tensor Sub(Tensor a, Tensor b) => AddScaled("Sub", a, b, -1f);

    private static Tensor AddScaled(string op, Tensor a, Tensor b, float alpha)
    {
        if (alpha == 1f && b.Length > a.Length) (a, b) = (b, a); // addition commutes: broadcast the smaller
        var (outer, mid, inner) = BroadcastLayout(op, a, b);
        var y = Result(op, a.Shape, a, b);
        a.Kernels.AddBroadcast(a.Data, b.Data, y.Data, outer, mid, inner, alpha);
        OnBackward(y, () =>
        {
            if (a.RequiresGrad) a.Kernels.Scale(y.Grad!, a.Grad!, a.Length, 1f, accumulate: Tensor.AccumulateInto(a));
            if (b.RequiresGrad) a.Kernels.SumMid(y.Grad!, b.Grad!, outer, mid, inner, alpha, accumulate: Tensor.AccumulateInto(b));
        });
        return y;
    }

    /// <summary>a · b, elementwise, with the broadcasting of <see cref="Add"/>.</summary>
    public static Tensor Mul(Tensor a, Tensor b)
    {
        if (b.Length > a.Length) (a, b) = (b, a);
        var (outer, mid, inner) = BroadcastLayout("Mul", a, b);
        var y = Result("Mul", a.Shape, a, b);
        a.Kernels.MulBroadcast(a.Data, b.Data, y.Data, outer, mid, inner, accumulate: false);
        OnBackward(y, () =>
        {
            if (a.RequiresGrad) a.Kernels.MulBroadcast(y.Grad!, b.Data, a.Grad!, outer, mid, inner, accumulate: Tensor.AccumulateInto(a)); // da += dy * b
            if (b.RequiresGrad) a.Kernels.MulSumMid(y.Grad!, a.Data, b.Grad!, outer, mid, inner, accumulate: Tensor.AccumulateInto(b)); // db += sum_mid dy * a
        });
        return y;
    }

    /// <summary>a · s for a constant <paramref name="s"/>.</summary>
    public static Tensor Scale(Tensor a, float s)
    {
        var y = Result("Scale", a.Shape, a);
        a.Kernels.Scale(a.Data, y.Data, a.Length, s, accumulate: false);
        OnBackward(y, () => a.Kernels.Scale(y.Grad!, a.Grad!, a.Length, s, accumulate: Tensor.AccumulateInto(a)));
        return y;
    }

    /// <summary>How b broadcasts over a, as the kernels' [outer, mid, inner].</summary>
    private static (int outer, int mid, int inner) BroadcastLayout(string op, Tensor a, Tensor b)
    {
        if (ShapeOf.Equal(a.Shape, b.Shape)) return (a.Length, 1, 1);
        if (b.Length == 1) return (1, a.Length, 1);
        var bs = b.Shape.AsSpan();
        while (bs.Length > 0 && bs[0] == 1) bs = bs[1..];
        if (bs.Length <= a.Rank && a.Shape.AsSpan(a.Rank - bs.Length).SequenceEqual(bs))
            return (1, a.Length / b.Length, b.Length);
        throw ShapeError(op, a, b, "do not broadcast (the second must equal the first, be a trailing part of it, or be a scalar)");
    }
}
