using System.Diagnostics;

namespace ViTScratch.Kernels;

/// <summary>
/// A decorator that times every call of another backend and adds it to a category (matmul,
/// attention, layernorm, softmax/loss, elementwise, data movement, optimizer, host transfer).
/// It synchronises after each call so device time is not attributed to whichever call happens to
/// wait next; that costs a little on a GPU and nothing on the CPU. Used by `vit bench --profile`
/// to show where a training step spends its time and how much of it runs at GEMM speed.
/// </summary>
public sealed class ProfilingKernels(IKernels inner) : IKernels
{
    /// <summary>Totals of one category or kernel since the last <see cref="Reset"/>.</summary>
    public sealed class Entry
    {
        /// <summary>Calls timed.</summary>
        public long Calls { get; internal set; }
        /// <summary>Wall-clock seconds of those calls, each waited for.</summary>
        public double Seconds { get; internal set; }
        /// <summary>Floating-point operations of those calls (matmul and attention; 0 for the memory-bound kernels).</summary>
        public double Flops { get; internal set; }
        /// <summary>
        /// Bytes those calls must move at the least: each operand read once and each result written once
        /// (an accumulated result read too), 4 bytes a float. Counted for the memory-bound kernels, whose
        /// roof is the memory's rate; 0 for matmul and attention, whose roof is the FMA peak.
        /// </summary>
        public double Bytes { get; internal set; }
    }

    private readonly Dictionary<string, Entry> _categories = new(), _kernels = new();

    /// <summary>Totals per category: "matmul", "attention", "layernorm", "softmax/loss", "gelu", "elementwise", "data movement", "optimizer", "host transfer".</summary>
    public IReadOnlyDictionary<string, Entry> Categories => _categories;

    /// <summary>The same totals per kernel (the <see cref="IKernels"/> method; a matmul by its shape), for the detail table.</summary>
    public IReadOnlyDictionary<string, Entry> Kernels => _kernels;

    /// <summary>The backend being timed.</summary>
    public IKernels Inner => inner;

    /// <inheritdoc/>
    public string Name => inner.Name;

    /// <inheritdoc/>
    public MathPrecision Precision { get => inner.Precision; set => inner.Precision = value; }

    /// <summary>Clears every total, so the next calls are counted from zero (after a warm-up, say).</summary>
    public void Reset()
    {
        _categories.Clear();
        _kernels.Clear();
    }

    /// <summary>Disposes the backend being timed.</summary>
    public void Dispose() => inner.Dispose();

    private void Time(string category, double flops, Action call, [System.Runtime.CompilerServices.CallerMemberName] string kernel = "") =>
        TimeMoving(category, flops, 0, call, kernel);

    // A memory-bound kernel: `floats` is how many floats it must read and write at the least.
    private void Moving(string category, double floats, Action call, [System.Runtime.CompilerServices.CallerMemberName] string kernel = "") =>
        TimeMoving(category, 0, 4 * floats, call, kernel);

    private void TimeMoving(string category, double flops, double bytes, Action call, string kernel)
    {
        long t0 = Stopwatch.GetTimestamp();
        call();
        inner.Synchronize();
        double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        Record(_categories, category, s, flops, bytes);
        Record(_kernels, kernel, s, flops, bytes);
    }

    private static void Record(Dictionary<string, Entry> table, string key, double seconds, double flops, double bytes = 0)
    {
        if (!table.TryGetValue(key, out var e)) table[key] = e = new Entry();
        e.Calls++;
        e.Seconds += seconds;
        e.Flops += flops;
        e.Bytes += bytes;
    }
    

    // The IKernels calls: each one forwards to the inner backend, timed (explicit implementations,
    // reached through the interface, as a Device calls them).
    DeviceBuffer IKernels.Allocate(int length) => inner.Allocate(length);
    DeviceBuffer IKernels.Slice(DeviceBuffer buffer, int offset, int length) => inner.Slice(buffer, offset, length);
    void IKernels.Synchronize() => inner.Synchronize();
    void IKernels.Upload(ReadOnlySpan<float> source, DeviceBuffer destination)
    {
        long t0 = Stopwatch.GetTimestamp();
        inner.Upload(source, destination);
        inner.Synchronize();
        Add("host transfer", Stopwatch.GetElapsedTime(t0).TotalSeconds);
    }

    void IKernels.Download(DeviceBuffer source, Span<float> destination)
    {
        long t0 = Stopwatch.GetTimestamp();
        inner.Download(source, destination);
        Add("host transfer", Stopwatch.GetElapsedTime(t0).TotalSeconds);
    }

    private void Add(string category, double seconds)
    {
        Record(_categories, category, seconds, 0);
        Record(_kernels, category, seconds, 0);
    }

    void IKernels.Fill(DeviceBuffer y, float value, int n) => Moving("data movement", n, () => inner.Fill(y, value, n));
    void IKernels.CopyStrided(DeviceBuffer x, DeviceBuffer y, in StridedCopy layout, bool accumulate)
    {
        var l = layout;
        Moving("data movement", (2 + (accumulate ? 1 : 0)) * (double)l.Count, () => inner.CopyStrided(x, y, l, accumulate));
    }
    void IKernels.PatchifyForward(DeviceBuffer images, DeviceBuffer patches, int batch, int channels, int height, int width, int patch) =>
        Moving("data movement", 2.0 * batch * channels * height * width, () => inner.PatchifyForward(images, patches, batch, channels, height, width, patch));
    void IKernels.PatchifyBackward(DeviceBuffer dPatches, DeviceBuffer dImages, int batch, int channels, int height, int width, int patch, bool accumulate) =>
        Moving("data movement", (2 + (accumulate ? 1 : 0)) * (double)batch * channels * height * width, () => inner.PatchifyBackward(dPatches, dImages, batch, channels, height, width, patch, accumulate));
    void IKernels.AddBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner_, float alpha) =>
        Moving("elementwise", 2.0 * outer * mid * inner_ + (double)outer * inner_, () => inner.AddBroadcast(x, b, y, outer, mid, inner_, alpha));
    void IKernels.MulBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner_, bool accumulate) =>
        Moving("elementwise", (2 + (accumulate ? 1 : 0)) * (double)outer * mid * inner_ + (double)outer * inner_, () => inner.MulBroadcast(x, b, y, outer, mid, inner_, accumulate));
    void IKernels.SumMid(DeviceBuffer x, DeviceBuffer y, int outer, int mid, int inner_, float alpha, bool accumulate) =>
        Moving("elementwise", (double)outer * mid * inner_ + (1 + (accumulate ? 1 : 0)) * (double)outer * inner_, () => inner.SumMid(x, y, outer, mid, inner_, alpha, accumulate));
    void IKernels.MulSumMid(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, int outer, int mid, int inner_, bool accumulate) =>
        Moving("elementwise", 2.0 * outer * mid * inner_ + (1 + (accumulate ? 1 : 0)) * (double)outer * inner_, () => inner.MulSumMid(x, w, y, outer, mid, inner_, accumulate));
    void IKernels.Scale(DeviceBuffer x, DeviceBuffer y, int n, float alpha, bool accumulate) =>
        Moving("elementwise", (2 + (accumulate ? 1 : 0)) * (double)n, () => inner.Scale(x, y, n, alpha, accumulate));
    void IKernels.GeluForward(DeviceBuffer x, DeviceBuffer y, int n) => Moving("gelu", 2.0 * n, () => inner.GeluForward(x, y, n));
    void IKernels.GeluBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, int n) => Moving("gelu", 4.0 * n, () => inner.GeluBackward(x, dy, dx, n));
    void IKernels.DropoutForward(DeviceBuffer x, DeviceBuffer y, int n, float p, uint seed) => Moving("elementwise", 2.0 * n, () => inner.DropoutForward(x, y, n, p, seed));
    void IKernels.DropoutBackward(DeviceBuffer dy, DeviceBuffer dx, int n, float p, uint seed) => Moving("elementwise", 2.0 * n, () => inner.DropoutBackward(dy, dx, n, p, seed));

    void IKernels.MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate, DeviceBuffer? bias)
    {
        var s = shape;
        string name = $"MatMul {(s.Batch > 1 ? s.Batch + "x" : "")}{s.M}x{s.K}{(s.TransA ? "ᵀ" : "")} · {s.K}x{s.N}{(s.TransB ? "ᵀ" : "")}";
        Time("matmul", s.Flops, () => inner.MatMul(a, b, c, s, alpha, accumulate, bias), bias is null ? name : name + " + bias");
    }

    void IKernels.SoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols) => Moving("softmax/loss", 2.0 * rows * cols, () => inner.SoftmaxForward(x, y, rows, cols));
    void IKernels.SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols) => Moving("softmax/loss", 3.0 * rows * cols, () => inner.SoftmaxBackward(y, dy, dx, rows, cols));
    void IKernels.LogSoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols) => Moving("softmax/loss", 2.0 * rows * cols, () => inner.LogSoftmaxForward(x, y, rows, cols));
    void IKernels.LogSoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols) => Moving("softmax/loss", 3.0 * rows * cols, () => inner.LogSoftmaxBackward(y, dy, dx, rows, cols));
    void IKernels.CrossEntropyForward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer losses, int rows, int classes, float smoothing) =>
        Moving("softmax/loss", (double)rows * classes + 2.0 * rows, () => inner.CrossEntropyForward(logits, labels, losses, rows, classes, smoothing));
    void IKernels.CrossEntropyBackward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer dlosses, DeviceBuffer dlogits, int rows, int classes, float smoothing) =>
        Moving("softmax/loss", 3.0 * rows * classes + 2.0 * rows, () => inner.CrossEntropyBackward(logits, labels, dlosses, dlogits, rows, classes, smoothing));
    void IKernels.CountCorrect(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer correct, int rows, int classes) =>
        Moving("softmax/loss", (double)rows * classes + rows + 1, () => inner.CountCorrect(logits, labels, correct, rows, classes));

    void IKernels.LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps) =>
        Moving("layernorm", 2.0 * rows * cols + 2.0 * cols + 2.0 * rows, () => inner.LayerNormForward(x, gamma, beta, y, mean, rstd, rows, cols, eps));
    void IKernels.LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols) =>
        Moving("layernorm", 4.0 * rows * cols + 2.0 * rows + 5.0 * cols, () => inner.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols));

    // The fusions go under the category of the op whose pass they keep: GELU and layernorm.
    void IKernels.GeluBiasBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dbias, int rows, int cols, bool accumulateDx, bool accumulateBias) =>
        Moving("gelu", (3 + (accumulateDx ? 1 : 0)) * (double)rows * cols + (1 + (accumulateBias ? 1 : 0)) * (double)cols, () => inner.GeluBiasBackward(x, dy, dx, dbias, rows, cols, accumulateDx, accumulateBias));
    void IKernels.AddLayerNormForward(DeviceBuffer a, DeviceBuffer b, DeviceBuffer sum, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps) =>
        Moving("layernorm", 4.0 * rows * cols + 2.0 * cols + 2.0 * rows, () => inner.AddLayerNormForward(a, b, sum, gamma, beta, y, mean, rstd, rows, cols, eps));

    // Attention FLOPs: forward 2·(QKᵀ + PV) = 4·n²·d per (batch, head); backward about twice that
    // plus the recomputation of QKᵀ: 10·n²·d.
    void IKernels.AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout) =>
        Time("attention", 4.0 * bh * n * n * d, () => inner.AttentionForward(q, k, v, o, lse, bh, n, d, scale, dropoutP, seed, layout));
    void IKernels.AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout) =>
        Time("attention", 10.0 * bh * n * n * d, () => inner.AttentionBackward(q, k, v, o, lse, dO, dq, dk, dv, bh, n, d, scale, dropoutP, seed, layout));

    void IKernels.SumSquares(DeviceBuffer x, int n, DeviceBuffer result, bool accumulate) => Moving("optimizer", n + 1.0, () => inner.SumSquares(x, n, result, accumulate));
    void IKernels.AdamWStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n, in AdamWArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        var a = args;
        Moving("optimizer", 7.0 * n, () => inner.AdamWStep(param, grad, m, v, n, a, gradNormSq, maxNorm));
    }
    void IKernels.SgdStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer momentum, int n, in SgdArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        var a = args;
        Moving("optimizer", 5.0 * n, () => inner.SgdStep(param, grad, momentum, n, a, gradNormSq, maxNorm));
    }
}
