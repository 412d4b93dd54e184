namespace ViTScratch.Engine;

public static partial class Ops
{
    /// <summary>
    /// Fused scaled dot-product attention: q, k, v: [B, H, N, d] → softmax(scale q kᵀ) v: [B, H, N, d],
    /// with optional dropout on the attention weights. The kernel saves only the log-sum-exp per
    /// query row; the backward pass recomputes the weights from it.
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, float scale, float dropoutP = 0f, uint seed = 0)
    {
        RequireRank("Attention", q, 4, "[B, H, N, d]");
        if (!ShapeOf.Equal(q.Shape, k.Shape)) throw ShapeError("Attention", q, k, "must be equal (q and k)");
        if (!ShapeOf.Equal(q.Shape, v.Shape)) throw ShapeError("Attention", q, v, "must be equal (q and v)");
        if (dropoutP is < 0f or >= 1f) throw new ViTScratchException($"Attention: dropout {dropoutP} must be in [0, 1)");
        int bh = q.Shape[0] * q.Shape[1], n = q.Shape[2], d = q.Shape[3];
        var o = Result("Attention", q.Shape, q, k, v); // o: [B, H, N, d]
        var lse = Tensor.Empty(q.Device, Dims(bh, n)); // lse: [B·H, N]
        q.K.AttentionForward(q.Data, k.Data, v.Data, o.Data, lse.Data, bh, n, d, scale, dropoutP, seed);
        OnBackward(o, () =>
        {
            // The kernel adds into dq, dk, dv.
            foreach (var t in (ReadOnlySpan<Tensor>)[q, k, v]) if (t.RequiresGrad) Tensor.ZeroIfUnwritten(t);
            var dq = q.RequiresGrad ? q.Grad! : Scratch(q).Data;
            var dk = k.RequiresGrad ? k.Grad! : Scratch(k).Data;
            var dv = v.RequiresGrad ? v.Grad! : Scratch(v).Data;
            q.K.AttentionBackward(q.Data, k.Data, v.Data, o.Data, lse.Data, o.Grad!, dq, dk, dv, bh, n, d, scale, dropoutP, seed);
        });
        return o;
    }

    /// <summary>
    /// The same attention, unfused: S = scale q kᵀ, P = softmax(S), o = P v, materialising the
    /// [B, H, N, N] scores. Kept as the reference path for tests and the benchmark baseline.
    /// </summary>
    public static Tensor AttentionUnfused(Tensor q, Tensor k, Tensor v, float scale)
    {
        var s = Scale(MatMul(q, k, transB: true), scale); // s: [B, H, N, N]
        var p = Softmax(s);                                // p: [B, H, N, N]
        return MatMul(p, v);                               // o: [B, H, N, d]
    }
}
