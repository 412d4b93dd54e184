namespace ViTScratch.Kernels;

/// <summary>
/// The raw-op interface: every backend (SIMD CPU, ILGPU on CUDA, ILGPU on its CPU simulator)
/// implements exactly these calls, and the engine never needs to know which one it talks to.
/// Advanced: these calls take raw buffers, check no shapes and record no gradients; the engine's
/// <c>Ops</c> are the checked, differentiable way to run them. Get one from
/// <see cref="BackendFactory.Create"/> or <c>Device.Kernels</c>.
/// </summary>
/// <remarks>
/// Contracts shared by every implementation:
/// <list type="bullet">
/// <item>Buffers hold float32, row-major, contiguous. Integer data (class labels) travels as floats,
/// which is exact below 2^24.</item>
/// <item>THE <c>=</c> / <c>+=</c> RULE. Forward kernels overwrite their outputs (<c>=</c>). Backward
/// kernels without an <c>accumulate</c> flag accumulate (<c>+=</c>) into every gradient buffer they
/// are handed, never overwrite; kernels with the flag do what it says. The engine passes
/// <c>accumulate: false</c> to the first kernel that writes a whole gradient in a backward pass and
/// <c>true</c> to every later one, and zeroes a gradient first only before a kernel that can only add
/// or writes part of it (Engine/Autograd.cs). So a tensor used twice receives both contributions,
/// without a zero-fill per gradient.</item>
/// <item>Shapes are passed as plain ints; the caller (the engine) has already checked them.</item>
/// <item>Calls are asynchronous on device backends: nothing returns to the host until
/// <see cref="Download"/> (or <see cref="Synchronize"/>).</item>
/// </list>
/// </remarks>
public interface IKernels : IDisposable
{
    /// <summary>"cpu", "cuda" or "ilgpu-cpu".</summary>
    string Name { get; }

    /// <summary>
    /// The arithmetic of the matrix products (<see cref="MathPrecision"/>). CUDA runs Tf32 and Bf16
    /// on tensor cores; the CPU backends accept every value and always compute in float32, so on
    /// them this reads back <see cref="MathPrecision.Fp32"/>.
    /// </summary>
    MathPrecision Precision { get; set; }

    // ---- memory ----------------------------------------------------------------------------
    /// <summary>A new zero-filled buffer of <paramref name="length"/> floats.</summary>
    DeviceBuffer Allocate(int length);
    /// <summary>A view of part of <paramref name="buffer"/> that shares its memory.</summary>
    DeviceBuffer Slice(DeviceBuffer buffer, int offset, int length);
    /// <summary>Copies <paramref name="source"/> from host memory into the start of <paramref name="destination"/>.</summary>
    void Upload(ReadOnlySpan<float> source, DeviceBuffer destination);
    /// <summary>Copies the start of <paramref name="source"/> into host memory, waiting for the kernels queued before it.</summary>
    void Download(DeviceBuffer source, Span<float> destination);
    /// <summary>Waits until every queued kernel has finished.</summary>
    void Synchronize();

    // ---- data movement ---------------------------------------------------------------------
    /// <summary>y[i] = value for the first <paramref name="n"/> elements.</summary>
    void Fill(DeviceBuffer y, float value, int n);
    /// <summary>
    /// y[dstOffset + i0*d0 + i1*d1 + i2*d2 + j] (=|+=) x[srcOffset + i0*s0 + i1*s1 + i2*s2 + j]
    /// for i0 &lt; n0, i1 &lt; n1, i2 &lt; n2, j &lt; inner. Head split and merge, concat along tokens,
    /// token selection and broadcast copies (a source stride of 0) are all this one kernel.
    /// Destination elements must not alias each other.
    /// </summary>
    void CopyStrided(DeviceBuffer x, DeviceBuffer y, in StridedCopy layout, bool accumulate);

    // ---- elementwise and broadcast ---------------------------------------------------------
    // Broadcast shapes: x and y are [outer, mid, inner]; b is [outer, inner] and is repeated
    // along mid. Equal shapes are outer = n, mid = 1, inner = 1; a bias over rows is
    // outer = 1, mid = rows, inner = cols; a scalar is outer = 1, mid = n, inner = 1.

    /// <summary>y = x + alpha * broadcast(b). In place (y == x) is allowed.</summary>
    void AddBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, float alpha);
    /// <summary>y (=|+=) x * broadcast(b). In place (y == x) is allowed when not accumulating.</summary>
    void MulBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, bool accumulate);
    /// <summary>y[o, i] (=|+=) alpha * sum over m of x[o, m, i]. Reduces a broadcast axis.</summary>
    void SumMid(DeviceBuffer x, DeviceBuffer y, int outer, int mid, int inner, float alpha, bool accumulate);
    /// <summary>y[o, i] (=|+=) sum over m of x[o, m, i] * w[o, m, i]. The gradient of a broadcast multiply.</summary>
    void MulSumMid(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, int outer, int mid, int inner, bool accumulate);
    /// <summary>y (=|+=) alpha * x over n elements.</summary>
    void Scale(DeviceBuffer x, DeviceBuffer y, int n, float alpha, bool accumulate);

    /// <summary>y = x * Phi(x), the exact erf form of GELU.</summary>
    void GeluForward(DeviceBuffer x, DeviceBuffer y, int n);
    /// <summary>dx += dy * GELU'(x).</summary>
    void GeluBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, int n);

    /// <summary>y = x * keep / (1 - p), where keep (probability 1 - p) is a counter-based hash of (seed, i): the same mask on every backend, regenerated rather than stored.</summary>
    void DropoutForward(DeviceBuffer x, DeviceBuffer y, int n, float p, uint seed);
    /// <summary>dx += dy * keep / (1 - p), with the same mask as the forward pass.</summary>
    void DropoutBackward(DeviceBuffer dy, DeviceBuffer dx, int n, float p, uint seed);

    // ---- patches ---------------------------------------------------------------------------
    /// <summary>
    /// images [B, C, H, W] → patches [B, (H/p)(W/p), p·p·C]: token gy·(W/p) + gx, then (row in patch,
    /// column in patch, channel), as vit-pytorch's Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)').
    /// One call: as strided copies it took p·p·C of them (48 for CIFAR's 4x4 patches of 3 channels).
    /// </summary>
    void PatchifyForward(DeviceBuffer images, DeviceBuffer patches, int batch, int channels, int height, int width, int patch);
    /// <summary>dImages (=|+=) dPatches put back in image order: the inverse of the forward permutation.</summary>
    void PatchifyBackward(DeviceBuffer dPatches, DeviceBuffer dImages, int batch, int channels, int height, int width, int patch, bool accumulate);

    // ---- matmul ----------------------------------------------------------------------------
    /// <summary>
    /// For each batch b: C_b (=|+=) alpha * op(A_b) op(B_b), where op(A_b) is [M, K] and op(B_b) is
    /// [K, N]. A is stored [M, K], or [K, M] when TransA; B is stored [K, N], or [N, K] when TransB.
    /// Batch strides of 0 share one operand across the batch. With <paramref name="bias"/> ([N]),
    /// bias[j] is added to column j of every row of every batch as well: a Linear layer's
    /// y = x Wᵀ + b without a second pass over C.
    /// </summary>
    void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate, DeviceBuffer? bias = null);

    // ---- row-wise ops over the last axis ---------------------------------------------------
    /// <summary>y = softmax(x) per row; x and y are [rows, cols].</summary>
    void SoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols);
    /// <summary>dx += y * (dy - sum(dy * y)) per row, from the forward's output y; all [rows, cols].</summary>
    void SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols);
    /// <summary>y = x - logsumexp(x) per row; x and y are [rows, cols].</summary>
    void LogSoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols);
    /// <summary>dx += dy - exp(y) * sum(dy) per row, from the forward's output y; all [rows, cols].</summary>
    void LogSoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols);

    /// <summary>
    /// Cross-entropy with label smoothing, fused with its softmax. The target of row r is
    /// (1 - smoothing) on class labels[r] plus smoothing / classes on every class.
    /// losses[r] = -sum_c target_c * log softmax(logits[r])_c. logits are [rows, classes]; labels
    /// (class indices as floats) and losses are [rows].
    /// </summary>
    void CrossEntropyForward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer losses, int rows, int classes, float smoothing);
    /// <summary>dlogits[r] += dlosses[r] * (softmax(logits[r]) - target_r).</summary>
    void CrossEntropyBackward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer dlosses, DeviceBuffer dlogits, int rows, int classes, float smoothing);
    /// <summary>correct[0] += number of rows of logits [rows, classes] whose arg-max equals the label (first maximum wins).</summary>
    void CountCorrect(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer correct, int rows, int classes);

    /// <summary>y = (x - mean) * rstd * gamma + beta per row of x [rows, cols]; gamma and beta are [cols], and mean and rstd ([rows]) are saved for the backward pass.</summary>
    void LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps);
    /// <summary>dx += the input gradient, dgamma += sum over rows of dy * xhat, dbeta += sum over rows of dy, with xhat = (x - mean) * rstd from the saved statistics.</summary>
    void LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy,
        DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols);

    // ---- fusions of two ops over the same rows ---------------------------------------------
    /// <summary>
    /// The backward pass of GELU applied to a Linear layer's output x = input Wᵀ + bias, fused with
    /// the bias gradient: t = dy * GELU'(x); dx (=|+=) t; dbias (=|+=) the column sums of t over the
    /// rows. x, dy, dx: [rows, cols]; dbias: [cols]. One read of x and dy, one write of dx, where
    /// GeluBackward then SumMid passed over dx two more times.
    /// </summary>
    void GeluBiasBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dbias, int rows, int cols,
        bool accumulateDx, bool accumulateBias);

    /// <summary>
    /// A residual add and the LayerNorm after it, in one pass: sum = a + b, then
    /// y = LayerNorm(sum) with mean and rstd saved per row exactly as <see cref="LayerNormForward"/>
    /// would from sum. a, b, sum, y: [rows, cols].
    /// </summary>
    void AddLayerNormForward(DeviceBuffer a, DeviceBuffer b, DeviceBuffer sum, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps);

    // ---- fused attention -------------------------------------------------------------------
    /// <summary>
    /// Scaled dot-product attention over q, k, v: [BH, N, D] (BH = batch x heads).
    /// o = dropout(softmax(scale * q kᵀ)) v, and lse[bh, i] = logsumexp_j(scale * q_i . k_j),
    /// saved for the backward pass. The N x N scores of a (batch, head) are never written out.
    /// Dropout on the attention weights draws the <see cref="DropoutForward"/> mask at index (bh*N + i)*N + j.
    /// <paramref name="layout"/> (default: dense [BH, N, D]) says where the rows are, so the
    /// kernels can read q, k, v straight out of a to_qkv output and write o with heads merged.
    /// </summary>
    void AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null);
    /// <summary>dq += , dk += , dv += the gradients of <see cref="AttentionForward"/> for dO (shaped as o), recomputing the attention weights from lse (FlashAttention style) rather than storing them.</summary>
    void AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null);

    // ---- optimizers ------------------------------------------------------------------------
    /// <summary>result[0] (=|+=) sum of x[i]^2. Accumulate over parameters for a global norm.</summary>
    void SumSquares(DeviceBuffer x, int n, DeviceBuffer result, bool accumulate);
    /// <summary>
    /// One AdamW step over n parameters with decoupled weight decay and bias correction. The
    /// gradient is first multiplied by the clip factor min(1, maxNorm / (sqrt(gradNormSq[0]) + 1e-6))
    /// when gradNormSq is given and maxNorm > 0 (as PyTorch's clip_grad_norm_), so clipping needs no host round trip.
    /// </summary>
    void AdamWStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n,
        in AdamWArgs args, DeviceBuffer? gradNormSq, float maxNorm);
    /// <summary>One SGD step with momentum (optionally Nesterov) and L2 weight decay; clipping as in AdamW.</summary>
    void SgdStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer momentum, int n,
        in SgdArgs args, DeviceBuffer? gradNormSq, float maxNorm);
}
