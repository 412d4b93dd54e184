using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// LayerNorm over the last axis.
//
// Forward: one warp per row (8 rows per 256-thread group, grid = ceil(rows / 8)). Mean, then the
//   variance as the mean of (x - mean)^2 (two passes: no cancellation), both by shuffles; saves
//   mean and rstd per row for the backward pass.
// Backward, with xhat = (x - mean) rstd and g = dy gamma:
//   dx     += rstd (g - mean(g) - xhat mean(g xhat))          one warp per row, as forward
//   dgamma += sum over rows of dy xhat,  dbeta += sum over rows of dy
//   The parameter gradients are a column reduction over all rows, done in TWO stages so no
//   element is ever the target of contended atomics:
//   1. ParamPartials: grid (ceil(cols / 256), chunks); thread = one column of one chunk of rows,
//      so a warp reads 32 consecutive columns of a row (coalesced). Writes its two partial sums
//      to scratch[chunk, col] and scratch[chunks + chunk, col].
//   2. ParamReduce: one thread per column adds the chunk partials and does dgamma/dbeta +=.
//   chunks = min(ceil(rows / 32), 128): enough groups to fill a GPU, few partials to add.
public sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>? _lnForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _lnBackwardDx;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _lnParamPartials;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _lnParamReduce;

    public void LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps)
    {
        if (rows == 0 || cols == 0) return;
        (_lnForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(LayerNormKernels.Forward))(
            WarpPerRow(rows), V(x), V(gamma), V(beta), V(y), V(mean), V(rstd), rows, cols, eps);
    }

    public void LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy,
        DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols)
    {
        if (rows == 0 || cols == 0) return;
        (_lnBackwardDx ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(LayerNormKernels.BackwardDx))(
            WarpPerRow(rows), V(x), V(gamma), V(mean), V(rstd), V(dy), V(dx), rows, cols);

        int chunks = Math.Min((rows + 31) / 32, 128);
        var partials = Scratch("layernorm", 2 * chunks * cols);
        (_lnParamPartials ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(LayerNormKernels.ParamPartials))(
            new KernelConfig(new Index2D((cols + GroupSize - 1) / GroupSize, chunks), new Index2D(GroupSize, 1)),
            V(x), V(mean), V(rstd), V(dy), partials, rows, cols, chunks);
        (_lnParamReduce ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(LayerNormKernels.ParamReduce))(
            new KernelConfig((cols + GroupSize - 1) / GroupSize, GroupSize), partials, V(dgamma), V(dbeta), cols, chunks);
    }
}

/// <summary>The kernels of GpuKernels.LayerNorm.cs.</summary>
public static class LayerNormKernels
{
    private const int W = GpuKernels.WarpSize;

    private static int Row => Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx;

    [GpuKernel]
    public static void Forward(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> mean, ArrayView<float> rstd, int rows, int cols, float eps)
    {
        int row = Row, lane = Warp.LaneIdx;
        bool valid = row < rows;
        int start = row * cols;
        float s = 0f;
        if (valid) for (int c = lane; c < cols; c += W) s += x[start + c];
        float mu = WarpMath.Sum(s) / cols;
        float sq = 0f;
        if (valid)
            for (int c = lane; c < cols; c += W)
            {
                float d = x[start + c] - mu;
                sq += d * d;
            }
        float rinv = 1f / MathF.Sqrt(WarpMath.Sum(sq) / cols + eps);
        if (!valid) return;
        for (int c = lane; c < cols; c += W)
            y[start + c] = (x[start + c] - mu) * rinv * gamma[c] + beta[c];
        if (lane == 0)
        {
            mean[row] = mu;
            rstd[row] = rinv;
        }
    }

    [GpuKernel]
    public static void BackwardDx(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> dy, ArrayView<float> dx, int rows, int cols)
    {
        int row = Row, lane = Warp.LaneIdx;
        bool valid = row < rows;
        int start = row * cols;
        float mu = valid ? mean[row] : 0f, rinv = valid ? rstd[row] : 0f;
        float sg = 0f, sgx = 0f;
        if (valid)
            for (int c = lane; c < cols; c += W)
            {
                float g = dy[start + c] * gamma[c];
                sg += g;
                sgx += g * (x[start + c] - mu) * rinv;
            }
        float meanG = WarpMath.Sum(sg) / cols, meanGx = WarpMath.Sum(sgx) / cols;
        if (!valid) return;
        for (int c = lane; c < cols; c += W)
        {
            float xhat = (x[start + c] - mu) * rinv;
            dx[start + c] += rinv * (dy[start + c] * gamma[c] - meanG - xhat * meanGx);
        }
    }

    // partials: [2, chunks, cols]; the first half holds dgamma partials, the second dbeta.
    [GpuKernel]
    public static void ParamPartials(ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dy,
        ArrayView<float> partials, int rows, int cols, int chunks)
    {
        int c = Grid.IdxX * Group.DimX + Group.IdxX, chunk = Grid.IdxY;
        if (c >= cols) return;
        int perChunk = (rows + chunks - 1) / chunks;
        int r0 = chunk * perChunk, r1 = Math.Min(rows, r0 + perChunk);
        float sg = 0f, sb = 0f;
        for (int r = r0; r < r1; r++)
        {
            float g = dy[r * cols + c];
            sg += g * (x[r * cols + c] - mean[r]) * rstd[r];
            sb += g;
        }
        partials[chunk * cols + c] = sg;
        partials[(chunks + chunk) * cols + c] = sb;
    }

    [GpuKernel]
    public static void ParamReduce(ArrayView<float> partials, ArrayView<float> dgamma, ArrayView<float> dbeta, int cols, int chunks)
    {
        int c = Grid.GlobalIndex.X;
        if (c >= cols) return;
        float sg = 0f, sb = 0f;
        for (int k = 0; k < chunks; k++)
        {
            sg += partials[k * cols + c];
            sb += partials[(chunks + k) * cols + c];
        }
        dgamma[c] += sg;
        dbeta[c] += sb;
    }
}
