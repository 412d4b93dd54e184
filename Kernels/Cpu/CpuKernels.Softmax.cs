namespace ViTScratch.Kernels.Cpu;

// Row-wise softmax, log-softmax and the fused cross-entropy. Each row is short (65 tokens, 10 to
// 100 classes), so a row is handled by one core in three cache-hot passes: max, exp-and-sum, scale.
internal sealed partial class CpuKernels
{
    // Row-wise jobs: x in, y out (forward); y, dy in, dx += (backward, X = y, Dy = dy, Y = dx). Rows of Cols.
    private readonly record struct RowsJob(CpuBuffer X, CpuBuffer? Dy, CpuBuffer Y, int Cols, SimdPath Path);

    public void SoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols)
    {
        Par.For(rows, cols * 4L, new RowsJob(CpuBuffer.Of(x), null, CpuBuffer.Of(y), cols, SimdPath), static (in RowsJob j, int s, int e) =>
        {
            int cols = j.Cols;
            for (int r = s; r < e; r++)
            {
                var xr = j.X.Span.Slice(r * cols, cols);
                var yr = j.Y.Span.Slice(r * cols, cols);
                float sum = Simd.ExpShifted(j.Path, xr, Simd.Max(j.Path, xr), yr);
                Simd.Scale(j.Path, yr, yr, 1f / sum, accumulate: false);
            }
        });
    }

    public void SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols)
    {
        Par.For(rows, cols * 4L, new RowsJob(CpuBuffer.Of(y), CpuBuffer.Of(dy), CpuBuffer.Of(dx), cols, SimdPath), static (in RowsJob j, int s, int e) =>
        {
            int cols = j.Cols;
            for (int r = s; r < e; r++)
            {
                var yr = j.X.Span.Slice(r * cols, cols);
                var gr = j.Dy!.Span.Slice(r * cols, cols);
                var dr = j.Y.Span.Slice(r * cols, cols);
                float dot = Simd.Dot(j.Path, yr, gr);
                for (int c = 0; c < cols; c++) dr[c] += yr[c] * (gr[c] - dot);
            }
        });
    }

    public void LogSoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols)
    {
        Par.For(rows, cols * 4L, new RowsJob(CpuBuffer.Of(x), null, CpuBuffer.Of(y), cols, SimdPath), static (in RowsJob j, int s, int e) =>
        {
            int cols = j.Cols;
            for (int r = s; r < e; r++)
            {
                var xr = j.X.Span.Slice(r * cols, cols);
                var yr = j.Y.Span.Slice(r * cols, cols);
                float max = Simd.Max(j.Path, xr);
                float lse = max + MathF.Log(Simd.ExpShifted(j.Path, xr, max, yr));
                Simd.AddConstant(j.Path, xr, -lse, yr);
            }
        });
    }

    public void LogSoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols)
    {
        Par.For(rows, cols * 4L, new RowsJob(CpuBuffer.Of(y), CpuBuffer.Of(dy), CpuBuffer.Of(dx), cols, SimdPath), static (in RowsJob j, int s, int e) =>
        {
            int cols = j.Cols;
            for (int r = s; r < e; r++)
            {
                var yr = j.X.Span.Slice(r * cols, cols);
                var gr = j.Dy!.Span.Slice(r * cols, cols);
                var dr = j.Y.Span.Slice(r * cols, cols);
                float sum = Simd.Sum(j.Path, gr);
                for (int c = 0; c < cols; c++) dr[c] += gr[c] - MathF.Exp(yr[c]) * sum;
            }
        });
    }

    // Forward: Grad is the per-row losses (written); backward: Grad is dlosses (read), DLogits is written.
    private readonly record struct CrossEntropyJob(CpuBuffer Logits, CpuBuffer Labels, CpuBuffer Grad, CpuBuffer? DLogits, int Classes, float Smoothing, SimdPath Path);

    // One row of exp(x - max) for cross-entropy: on the stack for up to 1024 classes, else in a
    // per-thread array kept across calls, so even many-class heads allocate nothing per call.
    [ThreadStatic] private static float[]? t_classRow;

    private static Span<float> ClassRow(int classes) =>
        (t_classRow is { } a && a.Length >= classes ? a : t_classRow = new float[classes]).AsSpan(0, classes);

    // loss = lse - sum_c target_c x_c with target = (1 - s) onehot(label) + s / C, which expands
    // to lse - (1 - s) x_label - (s / C) sum_c x_c: no probabilities need to be stored.
    public void CrossEntropyForward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer losses, int rows, int classes, float smoothing)
    {
        var job = new CrossEntropyJob(CpuBuffer.Of(logits), CpuBuffer.Of(labels), CpuBuffer.Of(losses), null, classes, smoothing, SimdPath);
        Par.For(rows, classes * 4L, job, static (in CrossEntropyJob j, int s, int e) =>
        {
            int classes = j.Classes;
            float smoothing = j.Smoothing;
            Span<float> tmp = classes <= 1024 ? stackalloc float[classes] : ClassRow(classes);
            for (int r = s; r < e; r++)
            {
                var xr = j.Logits.Span.Slice(r * classes, classes);
                int label = (int)j.Labels.Span[r];
                float max = Simd.Max(j.Path, xr);
                float lse = max + MathF.Log(Simd.ExpShifted(j.Path, xr, max, tmp));
                j.Grad.Span[r] = lse - (1f - smoothing) * xr[label] - smoothing / classes * Simd.Sum(j.Path, xr);
            }
        });
    }

    public void CrossEntropyBackward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer dlosses, DeviceBuffer dlogits, int rows, int classes, float smoothing)
    {
        var job = new CrossEntropyJob(CpuBuffer.Of(logits), CpuBuffer.Of(labels), CpuBuffer.Of(dlosses), CpuBuffer.Of(dlogits), classes, smoothing, SimdPath);
        Par.For(rows, classes * 4L, job, static (in CrossEntropyJob j, int s, int e) =>
        {
            int classes = j.Classes;
            float smoothing = j.Smoothing;
            Span<float> p = classes <= 1024 ? stackalloc float[classes] : ClassRow(classes);
            for (int r = s; r < e; r++)
            {
                var xr = j.Logits.Span.Slice(r * classes, classes);
                var dr = j.DLogits!.Span.Slice(r * classes, classes);
                int label = (int)j.Labels.Span[r];
                float g = j.Grad.Span[r];
                float inv = 1f / Simd.ExpShifted(j.Path, xr, Simd.Max(j.Path, xr), p);
                float uniform = smoothing / classes;
                for (int c = 0; c < classes; c++)
                {
                    float target = uniform + (c == label ? 1f - smoothing : 0f);
                    dr[c] += g * (p[c] * inv - target);
                }
            }
        });
    }

    public void CountCorrect(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer correct, int rows, int classes)
    {
        var xs = CpuBuffer.Of(logits).Span; var ls = CpuBuffer.Of(labels).Span;
        int count = 0;
        for (int r = 0; r < rows; r++)
        {
            var xr = xs.Slice(r * classes, classes);
            int best = 0;
            for (int c = 1; c < classes; c++) if (xr[c] > xr[best]) best = c;
            if (best == (int)ls[r]) count++;
        }
        CpuBuffer.Of(correct).Span[0] += count;
    }
}
