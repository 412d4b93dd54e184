using ViTScratch.Kernels;

namespace ViTScratch.Engine;

// Shape and data-movement ops. Every one of them but Patchify is a CopyStrided (three strided
// loops around a contiguous run) or a reduction over one axis, and each backward pass is the same
// copy run the other way: overwriting or adding by the engine's `=` / `+=` rule (Autograd.cs),
// after zeroing first where the copy covers only part of the input's gradient. Patchify has its
// own kernel pair: interleaving channels inside a patch vector took one strided copy per
// (row, column, channel) of a patch, 48 launches for CIFAR's 4x4 patches.
public static partial class Ops
{
    /// <summary>Same values, new shape (one dimension may be -1). The data is copied: tensors never alias.</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        shape = (int[])shape.Clone();
        int infer = Array.IndexOf(shape, -1);
        if (infer >= 0)
        {
            int known = 1;
            for (int i = 0; i < shape.Length; i++) if (i != infer) known *= shape[i];
            if (known == 0 || x.Length % known != 0)
                throw new ViTScratchException($"Reshape: cannot infer -1 in {ShapeOf.Format(shape)} for {x.Length} elements of {ShapeOf.Format(x.Shape)}");
            shape[infer] = x.Length / known;
        }
        if (ShapeOf.Count(shape) != x.Length)
            throw new ViTScratchException($"Reshape: shapes {ShapeOf.Format(x.Shape)} and {ShapeOf.Format(shape)} have different element counts");
        var y = Result("Reshape", shape, x);
        x.Kernels.Scale(x.Data, y.Data, x.Length, 1f, accumulate: false);
        OnBackward(y, () => x.Kernels.Scale(y.Grad!, x.Grad!, x.Length, 1f, accumulate: Tensor.AccumulateInto(x)));
        return y;
    }

    /// <summary>
    /// Takes heads out of a token matrix: x: [B, N, C] → [B, H, N, d], reading the H·d columns that
    /// start at <paramref name="columnOffset"/> (q, k and v all come from one to_qkv output).
    /// </summary>
    public static Tensor SplitHeads(Tensor x, int heads, int headDim, int columnOffset = 0)
    {
        RequireRank("SplitHeads", x, 3, "[B, N, C]");
        int b = x.Shape[0], n = x.Shape[1], c = x.Shape[2];
        if (columnOffset < 0 || columnOffset + heads * headDim > c)
            throw new ViTScratchException($"SplitHeads: columns [{columnOffset}, {columnOffset + heads * headDim}) are outside shape {ShapeOf.Format(x.Shape)}");
        // y[b, h, t, :] = x[b, t, offset + h·d : ...]   loops (b, h, t), runs of d
        var layout = new StridedCopy(b, heads, n, headDim,
            columnOffset, n * c, headDim, c,
            0, heads * n * headDim, n * headDim, headDim);
        var y = Result("SplitHeads", Dims(b, heads, n, headDim), x); // y: [B, H, N, d]
        x.Kernels.CopyStrided(x.Data, y.Data, layout, accumulate: false);
        OnBackward(y, () =>
        {
            Tensor.ZeroIfUnwritten(x); // q, k and v each write a third of the to_qkv gradient
            x.Kernels.CopyStrided(y.Grad!, x.Grad!, Reverse(layout), accumulate: true);
        });
        return y;
    }

    /// <summary>Puts heads back side by side: x: [B, H, N, d] → [B, N, H·d].</summary>
    public static Tensor MergeHeads(Tensor x)
    {
        RequireRank("MergeHeads", x, 4, "[B, H, N, d]");
        int b = x.Shape[0], h = x.Shape[1], n = x.Shape[2], d = x.Shape[3];
        var layout = new StridedCopy(b, h, n, d,
            0, h * n * d, n * d, d,
            0, n * h * d, d, h * d);
        var y = Result("MergeHeads", Dims(b, n, h * d), x); // y: [B, N, H·d]
        x.Kernels.CopyStrided(x.Data, y.Data, layout, accumulate: false);
        OnBackward(y, () => x.Kernels.CopyStrided(y.Grad!, x.Grad!, Reverse(layout), Tensor.AccumulateInto(x))); // a permutation: every element
        return y;
    }

    /// <summary>Repeats a [1, ...] tensor along a new batch of <paramref name="batch"/>: the cls token for every image.</summary>
    public static Tensor ExpandBatch(Tensor x, int batch)
    {
        if (x.Rank < 1 || x.Shape[0] != 1)
            throw new ViTScratchException($"ExpandBatch: expected a leading dimension of 1, got shape {ShapeOf.Format(x.Shape)}");
        int[] shape = (int[])x.Shape.Clone();
        shape[0] = batch;
        int inner = x.Length;
        var y = Result("ExpandBatch", shape, x); // y: [B, ...]
        x.Kernels.CopyStrided(x.Data, y.Data, new StridedCopy(1, 1, batch, inner, 0, 0, 0, 0, 0, 0, 0, inner), accumulate: false);
        OnBackward(y, () => x.Kernels.SumMid(y.Grad!, x.Grad!, 1, batch, inner, 1f, accumulate: Tensor.AccumulateInto(x)));
        return y;
    }

    /// <summary>Concatenates along axis 1 (tokens): a: [B, Na, D], b: [B, Nb, D] → [B, Na + Nb, D].</summary>
    public static Tensor ConcatTokens(Tensor a, Tensor b)
    {
        RequireRank("ConcatTokens", a, 3, "[B, N, D]");
        RequireRank("ConcatTokens", b, 3, "[B, N, D]");
        if (a.Shape[0] != b.Shape[0] || a.Shape[2] != b.Shape[2])
            throw ShapeError("ConcatTokens", a, b, "must agree in batch and feature dimensions");
        int batch = a.Shape[0], na = a.Shape[1], nb = b.Shape[1], d = a.Shape[2], n = na + nb;
        var la = new StridedCopy(1, 1, batch, na * d, 0, 0, 0, na * d, 0, 0, 0, n * d);
        var lb = new StridedCopy(1, 1, batch, nb * d, 0, 0, 0, nb * d, na * d, 0, 0, n * d);
        var y = Result("ConcatTokens", Dims(batch, n, d), a, b); // y: [B, Na + Nb, D]
        a.Kernels.CopyStrided(a.Data, y.Data, la, accumulate: false);
        a.Kernels.CopyStrided(b.Data, y.Data, lb, accumulate: false);
        OnBackward(y, () =>
        {
            // Each input's gradient is one whole slice of y's: written in full.
            if (a.RequiresGrad) a.Kernels.CopyStrided(y.Grad!, a.Grad!, Reverse(la), Tensor.AccumulateInto(a));
            if (b.RequiresGrad) a.Kernels.CopyStrided(y.Grad!, b.Grad!, Reverse(lb), Tensor.AccumulateInto(b));
        });
        return y;
    }

    /// <summary>Token <paramref name="index"/> of every sequence: x: [B, N, D] → [B, D] (cls pooling).</summary>
    public static Tensor SelectToken(Tensor x, int index)
    {
        RequireRank("SelectToken", x, 3, "[B, N, D]");
        int b = x.Shape[0], n = x.Shape[1], d = x.Shape[2];
        if ((uint)index >= (uint)n) throw new ViTScratchException($"SelectToken: token {index} is outside shape {ShapeOf.Format(x.Shape)}");
        var layout = new StridedCopy(1, 1, b, d, index * d, 0, 0, n * d, 0, 0, 0, d);
        var y = Result("SelectToken", Dims(b, d), x); // y: [B, D]
        x.Kernels.CopyStrided(x.Data, y.Data, layout, accumulate: false);
        OnBackward(y, () =>
        {
            Tensor.ZeroIfUnwritten(x); // only one token's rows get a gradient
            x.Kernels.CopyStrided(y.Grad!, x.Grad!, Reverse(layout), accumulate: true);
        });
        return y;
    }

    /// <summary>
    /// Tokens <paramref name="tokens"/> (strictly ascending) of every sequence, the same ones for the
    /// whole batch: x: [B, N, D] → [B, K, D] (patch dropout). One strided copy per run of
    /// consecutive tokens, so it runs on every backend's CopyStrided; the gradient of the tokens
    /// left out is zero.
    /// </summary>
    public static Tensor GatherTokens(Tensor x, ReadOnlySpan<int> tokens)
    {
        RequireRank("GatherTokens", x, 3, "[B, N, D]");
        int b = x.Shape[0], n = x.Shape[1], d = x.Shape[2], k = tokens.Length;
        if (k == 0) throw new ViTScratchException("GatherTokens: no tokens to keep");
        for (int j = 0; j < k; j++)
            if ((uint)tokens[j] >= (uint)n || (j > 0 && tokens[j] <= tokens[j - 1]))
                throw new ViTScratchException($"GatherTokens: tokens must be ascending and inside {ShapeOf.Format(x.Shape)}; got [{string.Join(", ", tokens.ToArray())}]");
        var runs = new List<StridedCopy>();
        for (int j = 0; j < k;)
        {
            int start = j;
            while (j + 1 < k && tokens[j + 1] == tokens[j] + 1) j++;
            j++;
            // Tokens tokens[start..j) are consecutive in x and land at rows start..j of y.
            runs.Add(new StridedCopy(1, 1, b, (j - start) * d, tokens[start] * d, 0, 0, n * d, start * d, 0, 0, k * d));
        }
        var y = Result("GatherTokens", Dims(b, k, d), x); // y: [B, K, D]
        foreach (var run in runs) x.Kernels.CopyStrided(x.Data, y.Data, run, accumulate: false);
        OnBackward(y, () =>
        {
            Tensor.ZeroIfUnwritten(x); // the tokens left out get no gradient
            foreach (var run in runs) x.Kernels.CopyStrided(y.Grad!, x.Grad!, Reverse(run), accumulate: true);
        });
        return y;
    }

    /// <summary>Mean over axis 1 (tokens): x: [B, N, D] → [B, D] (mean pooling).</summary>
    public static Tensor MeanTokens(Tensor x)
    {
        RequireRank("MeanTokens", x, 3, "[B, N, D]");
        int b = x.Shape[0], n = x.Shape[1], d = x.Shape[2];
        var y = Result("MeanTokens", Dims(b, d), x); // y: [B, D]
        x.Kernels.SumMid(x.Data, y.Data, b, n, d, 1f / n, accumulate: false);
        OnBackward(y, () =>
        {
            Tensor.ZeroIfUnwritten(x); // the kernel adds in place
            x.Kernels.AddBroadcast(x.Grad!, y.Grad!, x.Grad!, b, n, d, 1f / n); // dx += dy / N
        });
        return y;
    }

    /// <summary>Sum of all elements → [1].</summary>
    public static Tensor Sum(Tensor x) => Total("Sum", x, 1f);

    /// <summary>Mean of all elements → [1].</summary>
    public static Tensor Mean(Tensor x) => Total("Mean", x, 1f / x.Length);

    private static Tensor Total(string op, Tensor x, float alpha)
    {
        var y = Result(op, Dims(1), x);
        x.Kernels.SumMid(x.Data, y.Data, 1, x.Length, 1, alpha, accumulate: false);
        OnBackward(y, () =>
        {
            Tensor.ZeroIfUnwritten(x);
            x.Kernels.AddBroadcast(x.Grad!, y.Grad!, x.Grad!, 1, x.Length, 1, alpha);
        });
        return y;
    }

    /// <summary>
    /// Cuts images into patches as vit-pytorch's Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)'):
    /// images: [B, C, H, W] → [B, (H/p)·(W/p), p·p·C]. Inputs need no gradient, but it is provided.
    /// </summary>
    public static Tensor Patchify(Tensor images, int patch)
    {
        RequireRank("Patchify", images, 4, "[B, C, H, W]");
        int b = images.Shape[0], c = images.Shape[1], h = images.Shape[2], w = images.Shape[3];
        if (h % patch != 0 || w % patch != 0)
            throw new ViTScratchException($"Patchify: image size {h}x{w} is not divisible by patch size {patch}");
        int gh = h / patch, gw = w / patch, pd = patch * patch * c;
        var y = Result("Patchify", Dims(b, gh * gw, pd), images); // y: [B, N, p·p·C]
        images.Kernels.PatchifyForward(images.Data, y.Data, b, c, h, w, patch);
        OnBackward(y, () => images.Kernels.PatchifyBackward(y.Grad!, images.Grad!, b, c, h, w, patch, Tensor.AccumulateInto(images)));
        return y;
    }

    private static StridedCopy Reverse(StridedCopy l) => new(l.N0, l.N1, l.N2, l.Inner,
        l.DstOffset, l.D0, l.D1, l.D2, l.SrcOffset, l.S0, l.S1, l.S2);
}
