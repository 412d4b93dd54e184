using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Row-wise softmax, log-softmax, fused cross-entropy and arg-max accuracy.
//
// Softmax and log-softmax, rows of up to RowMath.MaxCols (384) columns (every ViT row: attention
//   scores of 17 to 257, class logits of 10): the row is read ONCE into registers by a team of
//   4 to 32 lanes (RowMath: the narrowest team whose 12 slots per lane cover the row, so a warp
//   holds 32 / team rows and few lanes idle), reduced there (max, then sum of exp by team
//   shuffles) and written once; the backward loads y, dy and dx together before any store, so
//   no load waits behind a store to the same buffer. One HBM pass per tensor, and every lane
//   has all its loads in flight at once instead of one per loop trip.
//   Launch: groups of 256 threads = 8 warps = 8 x 32 / team rows, grid = RowMath.Groups.
// Longer rows (ForwardLong / BackwardLong), cross-entropy and CountCorrect: one warp per row,
//   lane l handles columns l, l + 32, ...; max and sums by butterfly shuffles (WarpMath). A row
//   is read two or three times; the repeat reads hit L1/L2. Class rows are few (one per image),
//   so these stay simple. Launch: 8 warps = 8 rows per group, grid = ceil(rows / 8).
// Rows past the end still run the shuffles (all 32 lanes must), they just load and store nothing.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int, int>? _softmaxForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>? _softmaxBackward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>? _softmaxForwardLong;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _softmaxBackwardLong;
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
        if (cols > RowMath.MaxCols)
        {
            (_softmaxForwardLong ??= Load<ArrayView<float>, ArrayView<float>, int, int, int>(SoftmaxKernels.ForwardLong))(
                WarpPerRow(rows), V(x), V(y), rows, cols, log);
            return;
        }
        int team = RowMath.TeamSize(cols);
        (_softmaxForward ??= Load<ArrayView<float>, ArrayView<float>, int, int, int, int>(SoftmaxKernels.Forward))(
            new KernelConfig(RowMath.Groups(rows, team), GroupSize), V(x), V(y), rows, cols, team, log);
    }

    private void SoftmaxBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int rows, int cols, int log)
    {
        if (rows == 0 || cols == 0) return;
        if (cols > RowMath.MaxCols)
        {
            (_softmaxBackwardLong ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(SoftmaxKernels.BackwardLong))(
                WarpPerRow(rows), V(y), V(dy), V(dx), rows, cols, log);
            return;
        }
        int team = RowMath.TeamSize(cols);
        (_softmaxBackward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(SoftmaxKernels.Backward))(
            new KernelConfig(RowMath.Groups(rows, team), GroupSize), V(y), V(dy), V(dx), rows, cols, team, log);
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
internal static class SoftmaxKernels
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

    // Register path (cols <= RowMath.MaxCols). The team of `team` lanes at lane t of its team
    // owns row `row`; n = cols for a real row, 0 past the last row (loads nothing, stores nothing).
    private static void TeamRow(int rows, int cols, int team, out int row, out int t, out int n)
    {
        int lane = Warp.LaneIdx, teamsPerWarp = GpuKernels.WarpSize / team;
        row = (Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx) * teamsPerWarp + lane / team;
        t = lane & (team - 1);
        n = row < rows ? cols : 0;
    }

    // y = softmax(x) (log = 0) or y = x - logsumexp(x) (log = 1); x: [rows, cols], y likewise.
    [GpuKernel]
    public static void Forward(ArrayView<float> x, ArrayView<float> y, int rows, int cols, int team, int log)
    {
        TeamRow(rows, cols, team, out int row, out int t, out int n);
        int start = row * cols;
        var v = RowMath.Load(x, start, t, team, n, float.NegativeInfinity);
        float max = RowMath.TeamMax(v.Max(), team);
        var e = v.ExpMinus(max);                          // pad slots: exp(-inf) = 0
        float sum = RowMath.TeamSum(e.Sum(), team);
        if (log != 0) RowMath.Store(y, start, t, team, n, v.Fma(1f, -(max + MathF.Log(sum))));
        else RowMath.Store(y, start, t, team, n, e.Fma(1f / sum, 0f));
    }

    // softmax:     dx += y (dy - sum(dy y))
    // log-softmax: dx += dy - exp(y) sum(dy)
    // y, dy, dx: [rows, cols]. dx is loaded with y and dy, before any store (see the header).
    [GpuKernel]
    public static void Backward(ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int rows, int cols, int team, int log)
    {
        TeamRow(rows, cols, team, out int row, out int t, out int n);
        int start = row * cols;
        var yv = RowMath.Load(y, start, t, team, n, 0f);
        var g = RowMath.Load(dy, start, t, team, n, 0f);   // pad 0: adds nothing to the sums
        var acc = RowMath.Load(dx, start, t, team, n, 0f);
        if (log != 0)
        {
            float sum = RowMath.TeamSum(g.Sum(), team);
            RowMath.Store(dx, start, t, team, n, yv.ExpMinus(0f).Fma(-sum, 0f).Add(g).Add(acc));
        }
        else
        {
            float dot = RowMath.TeamSum(g.Dot(yv), team);
            RowMath.Store(dx, start, t, team, n, yv.Fma(g.Fma(1f, -dot), acc));
        }
    }

    // Rows longer than RowMath.MaxCols: one warp per row, the row read in three passes.
    [GpuKernel]
    public static void ForwardLong(ArrayView<float> x, ArrayView<float> y, int rows, int cols, int log)
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

    [GpuKernel]
    public static void BackwardLong(ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int rows, int cols, int log)
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
