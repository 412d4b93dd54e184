using ViTScratch.Kernels;

namespace ViTScratch.Tests.Reference;

// Dense float64 definitions of the engine ops (Engine/Ops) that reach the kernels through a layout
// (a broadcast's [outer, mid, inner], a strided copy, the packed attention layout, the bias fused
// into the matmul) or through a composition (unfused attention). Each is written from the op's
// mathematical definition with full multi-indices, never with the layout the engine computes, so
// ReferenceGradientTests.EngineOps can check the engine's backward recipe, issued with the
// engine's own layout arguments, against finite differences of the definition.
public static partial class ReferenceKernels
{
    /// <summary>C (=|+=) alpha op(A) op(B), then bias[j] added to column j of every row of every batch: the Linear layer.</summary>
    public static void MatMulBias(double[] a, double[] b, double[] c, in MatMulShape s, double alpha, bool accumulate, double[] bias)
    {
        MatMul(a, b, c, s, alpha, accumulate);
        for (int bt = 0; bt < s.Batch; bt++)
            for (int i = 0; i < s.M; i++)
                for (int j = 0; j < s.N; j++)
                    c[bt * s.StrideC + (long)i * s.N + j] += bias[j];
    }

    /// <summary>
    /// y = a ⊕ b with NumPy broadcasting (shapes aligned at the right, size-1 dimensions repeat):
    /// y's shape is <paramref name="yShape"/>; ⊕ is a + alpha b or, with multiply, a b.
    /// </summary>
    public static double[] Broadcast(int[] yShape, double[] a, int[] aShape, double[] b, int[] bShape, bool multiply, double alpha = 1)
    {
        int n = 1;
        foreach (int d in yShape) n *= d;
        var y = new double[n];
        var index = new int[yShape.Length];
        for (int at = 0; at < n; at++)
        {
            int rest = at;
            for (int d = yShape.Length - 1; d >= 0; d--) { index[d] = rest % yShape[d]; rest /= yShape[d]; }
            double av = a[BroadcastOffset(index, aShape)], bv = b[BroadcastOffset(index, bShape)];
            y[at] = multiply ? av * bv : av + alpha * bv;
        }
        return y;
    }

    // Where y's multi-index reads an operand of the given shape under NumPy broadcasting.
    private static int BroadcastOffset(int[] yIndex, int[] shape)
    {
        int offset = 0, shift = yIndex.Length - shape.Length;
        for (int d = 0; d < shape.Length; d++)
            offset = offset * shape[d] + (shape[d] == 1 ? 0 : yIndex[d + shift]);
        return offset;
    }

    /// <summary>y[b, t, :] = x[b, tokens[t], :]: select (one token), gather (patch dropout). x: [B, N, D] → [B, K, D].</summary>
    public static double[] TakeTokens(double[] x, int batch, int n, int d, int[] tokens)
    {
        var y = new double[batch * tokens.Length * d];
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < tokens.Length; t++)
                for (int c = 0; c < d; c++)
                    y[(b * tokens.Length + t) * d + c] = x[(b * n + tokens[t]) * d + c];
        return y;
    }

    /// <summary>y[b, ...] = x[0, ...] for every b: the cls token expanded over the batch.</summary>
    public static double[] ExpandBatch(double[] x, int batch)
    {
        var y = new double[batch * x.Length];
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < x.Length; j++) y[b * x.Length + j] = x[j];
        return y;
    }

    /// <summary>y[b] = a[b] followed by c[b] along tokens: a: [B, Na, D], c: [B, Nc, D] → [B, Na + Nc, D].</summary>
    public static double[] ConcatTokens(double[] a, double[] c, int batch, int na, int nc, int d)
    {
        int n = na + nc;
        var y = new double[batch * n * d];
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < n; t++)
                for (int j = 0; j < d; j++)
                    y[(b * n + t) * d + j] = t < na ? a[(b * na + t) * d + j] : c[(b * nc + t - na) * d + j];
        return y;
    }

    /// <summary>
    /// Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)'): images [B, C, H, W] → [B, (H/p)(W/p), p·p·C].
    /// </summary>
    public static double[] Patchify(double[] images, int batch, int channels, int height, int width, int p)
    {
        int gh = height / p, gw = width / p, pd = p * p * channels;
        var y = new double[batch * gh * gw * pd];
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < channels; c++)
                for (int r = 0; r < height; r++)
                    for (int col = 0; col < width; col++)
                    {
                        int token = (r / p) * gw + col / p, inPatch = ((r % p) * p + col % p) * channels + c;
                        y[(b * gh * gw + token) * pd + inPatch] = images[((b * channels + c) * height + r) * width + col];
                    }
        return y;
    }

    /// <summary>dImages += the gradient of <see cref="Patchify"/>: every patch element back to its pixel.</summary>
    public static void PatchifyBackward(double[] dPatches, double[] dImages, int batch, int channels, int height, int width, int p)
    {
        int gh = height / p, gw = width / p, pd = p * p * channels;
        for (int b = 0; b < batch; b++)
            for (int token = 0; token < gh * gw; token++)
                for (int inPatch = 0; inPatch < pd; inPatch++)
                {
                    int c = inPatch % channels, p2 = (inPatch / channels) % p, p1 = inPatch / channels / p;
                    int r = (token / gw) * p + p1, col = (token % gw) * p + p2;
                    dImages[((b * channels + c) * height + r) * width + col] += dPatches[(b * gh * gw + token) * pd + inPatch];
                }
    }

    /// <summary>
    /// Multi-head attention on a to_qkv output, by its definition: qkv: [B, N, 3·H·d] holds q | k | v,
    /// each H heads of d columns; head h of token t reads q = qkv[b, t, h d + c], k at H d + h d + c,
    /// v at 2 H d + h d + c. o: [B, N, H·d], head h in columns h d .. h d + d.
    /// </summary>
    public static double[] AttentionPacked(double[] qkv, int batch, int n, int heads, int d, double scale, float dropoutP, uint seed)
    {
        var (q, k, v) = SplitPacked(qkv, batch, n, heads, d);
        int bh = batch * heads;
        var o = new double[bh * n * d];
        AttentionForward(q, k, v, o, new double[bh * n], bh, n, d, scale, dropoutP, seed);
        return MergePacked(o, batch, n, heads, d);
    }

    /// <summary>dqkv += the gradient of <see cref="AttentionPacked"/> for dO: [B, N, H·d].</summary>
    public static void AttentionPackedBackward(double[] qkv, double[] dO, double[] dqkv, int batch, int n, int heads, int d,
        double scale, float dropoutP, uint seed)
    {
        var (q, k, v) = SplitPacked(qkv, batch, n, heads, d);
        int bh = batch * heads, size = bh * n * d;
        var dOHeads = new double[size];
        int inner = heads * d;
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < n; t++)
                    for (int c = 0; c < d; c++)
                        dOHeads[((b * heads + h) * n + t) * d + c] = dO[(b * n + t) * inner + h * d + c];
        var dq = new double[size]; var dk = new double[size]; var dv = new double[size];
        AttentionBackward(q, k, v, new double[size], new double[bh * n], dOHeads, dq, dk, dv, bh, n, d, scale, dropoutP, seed);
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < n; t++)
                    for (int c = 0; c < d; c++)
                    {
                        int head = ((b * heads + h) * n + t) * d + c, row = (b * n + t) * 3 * inner + h * d + c;
                        dqkv[row] += dq[head];
                        dqkv[row + inner] += dk[head];
                        dqkv[row + 2 * inner] += dv[head];
                    }
    }

    private static (double[] Q, double[] K, double[] V) SplitPacked(double[] qkv, int batch, int n, int heads, int d)
    {
        int inner = heads * d, size = batch * heads * n * d;
        var q = new double[size]; var k = new double[size]; var v = new double[size];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < n; t++)
                    for (int c = 0; c < d; c++)
                    {
                        int head = ((b * heads + h) * n + t) * d + c, row = (b * n + t) * 3 * inner + h * d + c;
                        q[head] = qkv[row]; k[head] = qkv[row + inner]; v[head] = qkv[row + 2 * inner];
                    }
        return (q, k, v);
    }

    private static double[] MergePacked(double[] o, int batch, int n, int heads, int d)
    {
        int inner = heads * d;
        var y = new double[batch * n * inner];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < n; t++)
                    for (int c = 0; c < d; c++)
                        y[(b * n + t) * inner + h * d + c] = o[((b * heads + h) * n + t) * d + c];
        return y;
    }

    /// <summary>
    /// Ops.AttentionUnfused in float64, as the same three steps: S = scale q kᵀ, P = softmax(S),
    /// o = P v, with q, k, v: [bh, n, d]. <paramref name="p"/> receives P ([bh, n, n]).
    /// </summary>
    public static double[] AttentionUnfused(double[] q, double[] k, double[] v, int bh, int n, int d, double scale, double[] p)
    {
        var s = new double[bh * n * n];
        MatMul(q, k, s, MatMulShape.Batched(bh, n, n, d, transB: true), scale, accumulate: false);
        SoftmaxForward(s, p, bh * n, n);
        var o = new double[bh * n * d];
        MatMul(p, v, o, MatMulShape.Batched(bh, n, d, n), 1, accumulate: false);
        return o;
    }

    /// <summary>
    /// dq, dk, dv += the gradient of <see cref="AttentionUnfused"/>, the recipe the engine issues
    /// through its ops: dP, dv from the second product; dS from the softmax backward; the scale
    /// applied to dS; dq, dk from the first product.
    /// </summary>
    public static void AttentionUnfusedBackward(double[] q, double[] k, double[] v, double[] p, double[] dO,
        double[] dq, double[] dk, double[] dv, int bh, int n, int d, double scale)
    {
        var dp = new double[bh * n * n];
        MatMulBackward(p, v, dO, dp, dv, MatMulShape.Batched(bh, n, d, n), 1);
        var ds = new double[bh * n * n];
        SoftmaxBackward(p, dp, ds, bh * n, n);
        var dsScaled = new double[ds.Length];
        Scale(ds, dsScaled, ds.Length, scale, accumulate: false);
        MatMulBackward(q, k, dsScaled, dq, dk, MatMulShape.Batched(bh, n, n, d, transB: true), 1);
    }
}
