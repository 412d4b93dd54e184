namespace ViTScratch.Kernels.Cpu;

// Row-wise softmax, log-softmax and the fused cross-entropy. Each row is short (65 tokens, 10 to
// 100 classes), so a row is handled by one core in three cache-hot passes: max, exp-and-sum, scale.
public sealed partial class CpuKernels
{
    public void SoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols)
    {
        var xs = CpuBuffer.Of(x); var ys = CpuBuffer.Of(y);
        Par.For(rows, cols * 4L, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var xr = xs.Span.Slice(r * cols, cols);
                var yr = ys.Span.Slice(r * cols, cols);
                float sum = Simd.ExpShifted(xr, Simd.Max(xr), yr);
                Simd.Scale(yr, yr, 1f / sum, accumulate: false);
            }
        });
    }

    public void SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols)
    {
        var ys = CpuBuffer.Of(y); var dys = CpuBuffer.Of(dy); var dxs = CpuBuffer.Of(dx);
        Par.For(rows, cols * 4L, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var yr = ys.Span.Slice(r * cols, cols);
                var gr = dys.Span.Slice(r * cols, cols);
                var dr = dxs.Span.Slice(r * cols, cols);
                float dot = Simd.Dot(yr, gr);
                for (int c = 0; c < cols; c++) dr[c] += yr[c] * (gr[c] - dot);
            }
        });
    }

    public void LogSoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols)
    {
        var xs = CpuBuffer.Of(x); var ys = CpuBuffer.Of(y);
        Par.For(rows, cols * 4L, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var xr = xs.Span.Slice(r * cols, cols);
                var yr = ys.Span.Slice(r * cols, cols);
                float max = Simd.Max(xr);
                float lse = max + MathF.Log(Simd.ExpShifted(xr, max, yr));
                Simd.AddConstant(xr, -lse, yr);
            }
        });
    }

    public void LogSoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols)
    {
        var ys = CpuBuffer.Of(y); var dys = CpuBuffer.Of(dy); var dxs = CpuBuffer.Of(dx);
        Par.For(rows, cols * 4L, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var yr = ys.Span.Slice(r * cols, cols);
                var gr = dys.Span.Slice(r * cols, cols);
                var dr = dxs.Span.Slice(r * cols, cols);
                float sum = Simd.Sum(gr);
                for (int c = 0; c < cols; c++) dr[c] += gr[c] - MathF.Exp(yr[c]) * sum;
            }
        });
    }

    // loss = lse - sum_c target_c x_c with target = (1 - s) onehot(label) + s / C, which expands
    // to lse - (1 - s) x_label - (s / C) sum_c x_c: no probabilities need to be stored.
    public void CrossEntropyForward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer losses, int rows, int classes, float smoothing)
    {
        var xs = CpuBuffer.Of(logits); var ls = CpuBuffer.Of(labels); var outs = CpuBuffer.Of(losses);
        Par.For(rows, classes * 4L, (s, e) =>
        {
            Span<float> tmp = classes <= 1024 ? stackalloc float[classes] : new float[classes];
            for (int r = s; r < e; r++)
            {
                var xr = xs.Span.Slice(r * classes, classes);
                int label = (int)ls.Span[r];
                float max = Simd.Max(xr);
                float lse = max + MathF.Log(Simd.ExpShifted(xr, max, tmp));
                outs.Span[r] = lse - (1f - smoothing) * xr[label] - smoothing / classes * Simd.Sum(xr);
            }
        });
    }

    public void CrossEntropyBackward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer dlosses, DeviceBuffer dlogits, int rows, int classes, float smoothing)
    {
        var xs = CpuBuffer.Of(logits); var ls = CpuBuffer.Of(labels); var gs = CpuBuffer.Of(dlosses); var ds = CpuBuffer.Of(dlogits);
        Par.For(rows, classes * 4L, (s, e) =>
        {
            Span<float> p = classes <= 1024 ? stackalloc float[classes] : new float[classes];
            for (int r = s; r < e; r++)
            {
                var xr = xs.Span.Slice(r * classes, classes);
                var dr = ds.Span.Slice(r * classes, classes);
                int label = (int)ls.Span[r];
                float g = gs.Span[r];
                float inv = 1f / Simd.ExpShifted(xr, Simd.Max(xr), p);
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
