using ViTScratch.Kernels;

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
        q.Kernels.AttentionForward(q.Data, k.Data, v.Data, o.Data, lse.Data, bh, n, d, scale, dropoutP, seed);
        OnBackward(o, () =>
        {
            // The kernel adds into dq, dk, dv.
            foreach (var t in (ReadOnlySpan<Tensor>)[q, k, v]) if (t.RequiresGrad) Tensor.ZeroIfUnwritten(t);
            var dq = q.RequiresGrad ? q.Grad! : Scratch(q).Data;
            var dk = k.RequiresGrad ? k.Grad! : Scratch(k).Data;
            var dv = v.RequiresGrad ? v.Grad! : Scratch(v).Data;
            q.Kernels.AttentionBackward(q.Data, k.Data, v.Data, o.Data, lse.Data, o.Grad!, dq, dk, dv, bh, n, d, scale, dropoutP, seed);
        });
        return o;
    }

    /// <summary>
    /// Multi-head attention straight from a to_qkv output: qkv: [B, N, 3·H·d], column blocks q | k | v,
    /// each H heads of d side by side → o: [B, N, H·d], heads side by side (what to_out reads).
    /// The same numbers as SplitHeads ×3 → <see cref="Attention"/> → MergeHeads (the same kernels
    /// with AttentionLayout.Packed), without the eight copies per layer that those cost.
    /// </summary>
    public static Tensor AttentionPacked(Tensor qkv, int heads, int dimHead, float scale, float dropoutP = 0f, uint seed = 0)
    {
        RequireRank("AttentionPacked", qkv, 3, "[B, N, 3·H·d]");
        if (heads <= 0 || dimHead <= 0 || qkv.Shape[2] != 3 * heads * dimHead)
            throw new ViTScratchException($"AttentionPacked: shape {ShapeOf.Format(qkv.Shape)} is not [B, N, 3·{heads}·{dimHead}]");
        if (dropoutP is < 0f or >= 1f) throw new ViTScratchException($"AttentionPacked: dropout {dropoutP} must be in [0, 1)");
        int b = qkv.Shape[0], n = qkv.Shape[1], d = dimHead, inner = heads * d, bh = b * heads;
        var layout = AttentionLayout.Packed(heads, n, d);
        var o = Result("AttentionPacked", Dims(b, n, inner), qkv); // o: [B, N, H·d]
        var lse = Tensor.Empty(qkv.Device, Dims(bh, n));           // lse: [B·H, N]
        var (q, k, v) = Thirds(qkv, qkv.Data, inner);
        qkv.Kernels.AttentionForward(q, k, v, o.Data, lse.Data, bh, n, d, scale, dropoutP, seed, layout);
        OnBackward(o, () =>
        {
            // The kernel adds into dq, dk, dv, which together cover every element of the gradient.
            Tensor.ZeroIfUnwritten(qkv);
            var (dq, dk, dv) = Thirds(qkv, qkv.Grad!, inner);
            qkv.Kernels.AttentionBackward(q, k, v, o.Data, lse.Data, o.Grad!, dq, dk, dv, bh, n, d, scale, dropoutP, seed, layout);
        });
        return o;
    }

    // Views of a [B, N, 3·inner] buffer starting at columns 0, inner and 2·inner; each runs to the
    // buffer's end, which covers its last row (the layout's row stride steps over the other two).
    private static (DeviceBuffer Q, DeviceBuffer K, DeviceBuffer V) Thirds(Tensor qkv, DeviceBuffer buffer, int inner) =>
        (qkv.Kernels.Slice(buffer, 0, qkv.Length),
         qkv.Kernels.Slice(buffer, inner, qkv.Length - inner),
         qkv.Kernels.Slice(buffer, 2 * inner, qkv.Length - 2 * inner));

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
