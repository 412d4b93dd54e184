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
    public sealed class Entry
    {
        public long Calls;
        public double Seconds;
        public double Flops;
    }

    public Dictionary<string, Entry> Categories { get; } = new();

    /// <summary>The same totals per kernel (the <see cref="IKernels"/> method), for the detail table.</summary>
    public Dictionary<string, Entry> Kernels { get; } = new();

    public IKernels Inner => inner;

    public string Name => inner.Name;
    public MathPrecision Precision { get => inner.Precision; set => inner.Precision = value; }

    public void Reset()
    {
        Categories.Clear();
        Kernels.Clear();
    }

    private void Time(string category, double flops, Action call, [System.Runtime.CompilerServices.CallerMemberName] string kernel = "")
    {
        long t0 = Stopwatch.GetTimestamp();
        call();
        inner.Synchronize();
        double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        Record(Categories, category, s, flops);
        Record(Kernels, kernel, s, flops);
    }

    private static void Record(Dictionary<string, Entry> table, string key, double seconds, double flops)
    {
        if (!table.TryGetValue(key, out var e)) table[key] = e = new Entry();
        e.Calls++;
        e.Seconds += seconds;
        e.Flops += flops;
    }

    public DeviceBuffer Allocate(int length) => inner.Allocate(length);
    public DeviceBuffer Slice(DeviceBuffer buffer, int offset, int length) => inner.Slice(buffer, offset, length);
    public void Synchronize() => inner.Synchronize();
    public void Dispose() => inner.Dispose();

    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination)
    {
        long t0 = Stopwatch.GetTimestamp();
        inner.Upload(source, destination);
        inner.Synchronize();
        Add("host transfer", Stopwatch.GetElapsedTime(t0).TotalSeconds);
    }

    public void Download(DeviceBuffer source, Span<float> destination)
    {
        long t0 = Stopwatch.GetTimestamp();
        inner.Download(source, destination);
        Add("host transfer", Stopwatch.GetElapsedTime(t0).TotalSeconds);
    }

    private void Add(string category, double seconds)
    {
        Record(Categories, category, seconds, 0);
        Record(Kernels, category, seconds, 0);
    }

    public void Fill(DeviceBuffer y, float value, int n) => Time("data movement", 0, () => inner.Fill(y, value, n));
    public void CopyStrided(DeviceBuffer x, DeviceBuffer y, in StridedCopy layout, bool accumulate)
    {
        var l = layout;
        Time("data movement", 0, () => inner.CopyStrided(x, y, l, accumulate));
    }
    public void PatchifyForward(DeviceBuffer images, DeviceBuffer patches, int batch, int channels, int height, int width, int patch) =>
        Time("data movement", 0, () => inner.PatchifyForward(images, patches, batch, channels, height, width, patch));
    public void PatchifyBackward(DeviceBuffer dPatches, DeviceBuffer dImages, int batch, int channels, int height, int width, int patch, bool accumulate) =>
        Time("data movement", 0, () => inner.PatchifyBackward(dPatches, dImages, batch, channels, height, width, patch, accumulate));
    public void AddBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner_, float alpha) =>
        Time("elementwise", 0, () => inner.AddBroadcast(x, b, y, outer, mid, inner_, alpha));
    public void MulBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner_, bool accumulate) =>
        Time("elementwise", 0, () => inner.MulBroadcast(x, b, y, outer, mid, inner_, accumulate));
    public void SumMid(DeviceBuffer x, DeviceBuffer y, int outer, int mid, int inner_, float alpha, bool accumulate) =>
        Time("elementwise", 0, () => inner.SumMid(x, y, outer, mid, inner_, alpha, accumulate));
    public void MulSumMid(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, int outer, int mid, int inner_, bool accumulate) =>
        Time("elementwise", 0, () => inner.MulSumMid(x, w, y, outer, mid, inner_, accumulate));
    public void Scale(DeviceBuffer x, DeviceBuffer y, int n, float alpha, bool accumulate) =>
        Time("elementwise", 0, () => inner.Scale(x, y, n, alpha, accumulate));
    public void GeluForward(DeviceBuffer x, DeviceBuffer y, int n) => Time("gelu", 0, () => inner.GeluForward(x, y, n));
    public void GeluBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, int n) => Time("gelu", 0, () => inner.GeluBackward(x, dy, dx, n));
    public void DropoutForward(DeviceBuffer x, DeviceBuffer y, int n, float p, uint seed) => Time("elementwise", 0, () => inner.DropoutForward(x, y, n, p, seed));
    public void DropoutBackward(DeviceBuffer dy, DeviceBuffer dx, int n, float p, uint seed) => Time("elementwise", 0, () => inner.DropoutBackward(dy, dx, n, p, seed));

    public void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate, DeviceBuffer? bias = null)
    {
        var s = shape;
        string name = $"MatMul {(s.Batch > 1 ? s.Batch + "x" : "")}{s.M}x{s.K}{(s.TransA ? "ᵀ" : "")} · {s.K}x{s.N}{(s.TransB ? "ᵀ" : "")}";
        Time("matmul", s.Flops, () => inner.MatMul(a, b, c, s, alpha, accumulate, bias), bias is null ? name : name + " + bias");
    }

    public void SoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols) => Time("softmax/loss", 0, () => inner.SoftmaxForward(x, y, rows, cols));
    public void SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols) => Time("softmax/loss", 0, () => inner.SoftmaxBackward(y, dy, dx, rows, cols));
    public void LogSoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols) => Time("softmax/loss", 0, () => inner.LogSoftmaxForward(x, y, rows, cols));
    public void LogSoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols) => Time("softmax/loss", 0, () => inner.LogSoftmaxBackward(y, dy, dx, rows, cols));
    public void CrossEntropyForward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer losses, int rows, int classes, float smoothing) =>
        Time("softmax/loss", 0, () => inner.CrossEntropyForward(logits, labels, losses, rows, classes, smoothing));
    public void CrossEntropyBackward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer dlosses, DeviceBuffer dlogits, int rows, int classes, float smoothing) =>
        Time("softmax/loss", 0, () => inner.CrossEntropyBackward(logits, labels, dlosses, dlogits, rows, classes, smoothing));
    public void CountCorrect(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer correct, int rows, int classes) =>
        Time("softmax/loss", 0, () => inner.CountCorrect(logits, labels, correct, rows, classes));

    public void LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps) =>
        Time("layernorm", 0, () => inner.LayerNormForward(x, gamma, beta, y, mean, rstd, rows, cols, eps));
    public void LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols) =>
        Time("layernorm", 0, () => inner.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols));

    // The fusions go under the category of the op whose pass they keep: GELU and layernorm.
    public void GeluBiasBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dbias, int rows, int cols, bool accumulateDx, bool accumulateBias) =>
        Time("gelu", 0, () => inner.GeluBiasBackward(x, dy, dx, dbias, rows, cols, accumulateDx, accumulateBias));
    public void AddLayerNormForward(DeviceBuffer a, DeviceBuffer b, DeviceBuffer sum, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps) =>
        Time("layernorm", 0, () => inner.AddLayerNormForward(a, b, sum, gamma, beta, y, mean, rstd, rows, cols, eps));

    // Attention FLOPs: forward 2·(QKᵀ + PV) = 4·n²·d per (batch, head); backward about twice that
    // plus the recomputation of QKᵀ: 10·n²·d.
    public void AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null) =>
        Time("attention", 4.0 * bh * n * n * d, () => inner.AttentionForward(q, k, v, o, lse, bh, n, d, scale, dropoutP, seed, layout));
    public void AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse, DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv, int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null) =>
        Time("attention", 10.0 * bh * n * n * d, () => inner.AttentionBackward(q, k, v, o, lse, dO, dq, dk, dv, bh, n, d, scale, dropoutP, seed, layout));

    public void SumSquares(DeviceBuffer x, int n, DeviceBuffer result, bool accumulate) => Time("optimizer", 0, () => inner.SumSquares(x, n, result, accumulate));
    public void AdamWStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n, in AdamWArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        var a = args;
        Time("optimizer", 0, () => inner.AdamWStep(param, grad, m, v, n, a, gradNormSq, maxNorm));
    }
    public void SgdStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer momentum, int n, in SgdArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        var a = args;
        Time("optimizer", 0, () => inner.SgdStep(param, grad, momentum, n, a, gradNormSq, maxNorm));
    }
}
