using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Row-wise softmax, log-softmax, fused cross-entropy and arg-max accuracy.
//
// Algorithm: one warp per row. Rows here are short (65 tokens, 10 to 100 classes), so a whole
// group per row would idle most threads while a thread per row would read uncoalesced. Lane l
// handles columns l, l + 32, ...; the row max and the row sums are butterfly shuffles
// (WarpMath), so no shared memory and no barrier. A row is read two or three times; the repeat
// reads hit L1/L2.
// Launch: groups of 256 threads = 8 warps = 8 rows, grid = ceil(rows / 8).
// Rows past the end still run the shuffles (all 32 lanes must), they just load and store nothing.
public sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>? _softmaxForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _softmaxBackward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>? _crossEntropyForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>? _crossEntropyBackward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _countCorrect;

    public void SoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols) => SoftmaxForward(x, y, rows, cols, log: 0);
    public void LogSoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols) => SoftmaxForward(x, y, rows, cols, log: 1);
    public void SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols) => SoftmaxBackward(y, dy, dx, rows, cols, log: 0);
    public void LogSoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols) => SoftmaxBackward(y, dy, dx, rows, cols, log: 1);

    private void SoftmaxForward(DeviceBuffer x, DeviceBuffer y, int rows, int cols, int log)
    {
        if (rows == 0 || cols == 0) return;
        (_softmaxForward ??= Load<ArrayView<float>, ArrayView<float>, int, int, int>(SoftmaxKernels.Forward))(WarpPerRow(rows), V(x), V(y), rows, cols, log);
    }

    private void SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols, int log)
    {
        if (rows == 0 || cols == 0) return;
        (_softmaxBackward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(SoftmaxKernels.Backward))(
            WarpPerRow(rows), V(y), V(dy), V(dx), rows, cols, log);
    }

    public void CrossEntropyForward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer losses, int rows, int classes, float smoothing)
    {
        if (rows == 0) return;
        (_crossEntropyForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(SoftmaxKernels.CrossEntropyForward))(
            WarpPerRow(rows), V(logits), V(labels), V(losses), rows, classes, smoothing);
    }

    public void CrossEntropyBackward(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer dlosses, DeviceBuffer dlogits, int rows, int classes, float smoothing)
    {
        if (rows == 0) return;
        (_crossEntropyBackward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(SoftmaxKernels.CrossEntropyBackward))(
            WarpPerRow(rows), V(logits), V(labels), V(dlosses), V(dlogits), rows, classes, smoothing);
    }

    public void CountCorrect(DeviceBuffer logits, DeviceBuffer labels, DeviceBuffer correct, int rows, int classes)
    {
        if (rows == 0) return;
        (_countCorrect ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(SoftmaxKernels.CountCorrect))(
            WarpPerRow(rows), V(logits), V(labels), V(correct), rows, classes);
    }
}

/// <summary>The kernels of GpuKernels.Softmax.cs.</summary>
public static class SoftmaxKernels
{
    private const int W = GpuKernels.WarpSize;

    private static int Row => Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx;

    // Max and sum of exp(x - max) over one row, shared by every lane.
    private static void MaxAndSum(ArrayView<float> x, int start, int cols, bool valid, out float max, out float sum)
    {
        int lane = Warp.LaneIdx;
        max = float.NegativeInfinity;
        if (valid)
            for (int c = lane; c < cols; c += W) max = MathF.Max(max, x[start + c]);
        max = WarpMath.Max(max);
        sum = 0f;
        if (valid)
            for (int c = lane; c < cols; c += W) sum += MathF.Exp(x[start + c] - max);
        sum = WarpMath.Sum(sum);
    }

    // y = softmax(x) (log = 0) or y = x - logsumexp(x) (log = 1).
    [GpuKernel]
    public static void Forward(ArrayView<float> x, ArrayView<float> y, int rows, int cols, int log)
    {
        int row = Row;
        bool valid = row < rows;
        int start = row * cols;
        MaxAndSum(x, start, cols, valid, out float max, out float sum);
        if (!valid) return;
        float lse = max + MathF.Log(sum), inv = 1f / sum;
        for (int c = Warp.LaneIdx; c < cols; c += W)
        {
            float v = x[start + c];
            y[start + c] = log != 0 ? v - lse : MathF.Exp(v - max) * inv;
        }
    }

    // softmax:     dx += y (dy - sum(dy y))
    // log-softmax: dx += dy - exp(y) sum(dy)
    [GpuKernel]
    public static void Backward(ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int rows, int cols, int log)
    {
        int row = Row;
        bool valid = row < rows;
        int start = row * cols;
        float dot = 0f;
        if (valid)
            for (int c = Warp.LaneIdx; c < cols; c += W)
                dot += log != 0 ? dy[start + c] : dy[start + c] * y[start + c];
        dot = WarpMath.Sum(dot);
        if (!valid) return;
        for (int c = Warp.LaneIdx; c < cols; c += W)
        {
            float yv = y[start + c], g = dy[start + c];
            dx[start + c] += log != 0 ? g - MathF.Exp(yv) * dot : yv * (g - dot);
        }
    }

    // loss = lse - (1 - s) x[label] - (s / C) sum_c x_c: the smoothed target expanded, so no
    // probabilities are stored.
    [GpuKernel]
    public static void CrossEntropyForward(ArrayView<float> logits, ArrayView<float> labels, ArrayView<float> losses, int rows, int classes, float smoothing)
    {
        int row = Row;
        bool valid = row < rows;
        int start = row * classes;
        MaxAndSum(logits, start, classes, valid, out float max, out float sum);
        float total = 0f;
        if (valid)
            for (int c = Warp.LaneIdx; c < classes; c += W) total += logits[start + c];
        total = WarpMath.Sum(total);
        if (!valid || Warp.LaneIdx != 0) return;
        int label = (int)labels[row];
        losses[row] = max + MathF.Log(sum) - (1f - smoothing) * logits[start + label] - smoothing / classes * total;
    }

    // dlogits += dloss * (softmax - target).
    [GpuKernel]
    public static void CrossEntropyBackward(ArrayView<float> logits, ArrayView<float> labels, ArrayView<float> dlosses, ArrayView<float> dlogits,
        int rows, int classes, float smoothing)
    {
        int row = Row;
        bool valid = row < rows;
        int start = row * classes;
        MaxAndSum(logits, start, classes, valid, out float max, out float sum);
        if (!valid) return;
        int label = (int)labels[row];
        float g = dlosses[row], inv = 1f / sum, uniform = smoothing / classes;
        for (int c = Warp.LaneIdx; c < classes; c += W)
        {
            float target = c == label ? uniform + 1f - smoothing : uniform;
            dlogits[start + c] += g * (MathF.Exp(logits[start + c] - max) * inv - target);
        }
    }

    // correct[0] += rows whose arg-max (first maximum) is the label. Each warp finds its row's
    // arg-max by shuffles; the 8 verdicts of a group meet in shared memory and one thread adds
    // the group's count with a single atomic, so the counter sees rows / 8 atomics, not rows.
    [GpuKernel]
    public static void CountCorrect(ArrayView<float> logits, ArrayView<float> labels, ArrayView<float> correct, int rows, int classes)
    {
        var hits = SharedMemory.Allocate<int>(GpuKernels.WarpsPerGroup);
        int row = Row, lane = Warp.LaneIdx;
        bool valid = row < rows;
        int start = row * classes;
        float best = float.NegativeInfinity;
        int bestIndex = int.MaxValue;
        if (valid)
            for (int c = lane; c < classes; c += W)
            {
                float v = logits[start + c];
                if (v > best) { best = v; bestIndex = c; }   // strict: the first maximum of this lane wins
            }
        int arg = WarpMath.ArgMax(best, bestIndex);
        if (lane == 0) hits[Warp.WarpIdx] = valid && arg == (int)labels[row] ? 1 : 0;
        Group.Barrier();
        if (Group.IdxX == 0)
        {
            int count = hits[0] + hits[1] + hits[2] + hits[3] + hits[4] + hits[5] + hits[6] + hits[7];
            if (count != 0) Atomic.Add(ref correct[0], count);
        }
    }
}
