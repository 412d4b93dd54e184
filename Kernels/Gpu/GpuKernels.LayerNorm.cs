using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// LayerNorm over the last axis.
//
// Rows of up to RowMath.MaxCols (384) columns (every ViT width: 128, 192, 384) take the register
// path: a team of 4 to 32 lanes per row holds the row in registers (RowMath: 12 slots per lane),
// so each tensor crosses HBM once per kernel.
// Forward: load x, mean by team shuffles, variance as the mean of (x - mean)^2 over the registers
//   (two passes over registers, one over memory: no cancellation), y = xhat gamma + beta; saves
//   mean and rstd per row. Launch: 256 threads = 8 x 32 / team rows per group, grid = RowMath.Groups.
// Backward, with xhat = (x - mean) rstd and g = dy gamma:
//   dx     += rstd (g - mean(g) - xhat mean(g xhat))
//   dgamma += sum over rows of dy xhat,  dbeta += sum over rows of dy
//   One kernel (Backward) does both from one read of x, dy, dx: x, dy, dx are loaded together
//   (dx before any store, so no load waits behind a store), the two row means are team shuffles
//   over registers, and each lane keeps running dgamma / dbeta partials for its own columns
//   across the rows its team visits. Groups are persistent (grid = 2 per SM, capped by the rows;
//   teams stride over rows); at the end the teams of a group add their partials in shared memory
//   and the group writes one partial row: partials[group, col] and partials[groups + group, col].
//   ParamReduce then adds those rows. No element is ever the target of contended atomics, and
//   the sums are deterministic.
// ParamReduce: grid (ceil(cols / 32), 2), 8 warps; a lane owns one column of dgamma (y = 0) or
//   dbeta (y = 1), the 8 warps split the partial rows (4 independent accumulators per lane, so 4
//   loads are in flight), then the 8 sums meet in shared memory and warp 0 does dgamma/dbeta +=.
// Rows longer than 384 (not in any ViT): ForwardLong and BackwardDx, one warp per row that loops
//   over its row (two or three reads, the repeats hitting L1/L2), and ParamPartials for the
//   parameter gradients: grid (ceil(cols / 256), chunks), a thread sums one column over a chunk
//   of rows, chunks = min(ceil(rows / 32), 128), into the same partials layout for ParamReduce.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float, int>? _lnForward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>? _lnForwardLong;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>? _lnBackward;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _lnBackwardDx;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _lnParamPartials;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _lnParamReduce;

    public void LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps)
    {
        if (rows == 0 || cols == 0) return;
        if (cols > RowMath.MaxCols)
        {
            (_lnForwardLong ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(LayerNormKernels.ForwardLong))(
                WarpPerRow(rows), V(x), V(gamma), V(beta), V(y), V(mean), V(rstd), rows, cols, eps);
            return;
        }
        int team = RowMath.TeamSize(cols);
        (_lnForward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float, int>(LayerNormKernels.Forward))(
            new KernelConfig(RowMath.Groups(rows, team), GroupSize), V(x), V(gamma), V(beta), V(y), V(mean), V(rstd), rows, cols, eps, team);
    }

    public void LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy,
        DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols)
    {
        if (rows == 0 || cols == 0) return;
        int chunks;
        ArrayView<float> partials;
        if (cols <= RowMath.MaxCols)
        {
            int team = RowMath.TeamSize(cols);
            // Persistent groups, two per SM: enough warps in flight (each lane has 3 x 12 loads
            // out per row), and few partial rows for ParamReduce to add.
            chunks = Math.Min(RowMath.Groups(rows, team), 2 * _accelerator.NumMultiprocessors);
            partials = Workspace("layernorm", 2 * chunks * cols);
            (_lnBackward ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(LayerNormKernels.Backward))(
                new KernelConfig(chunks, GroupSize), V(x), V(gamma), V(mean), V(rstd), V(dy), V(dx), partials, rows, cols, team, chunks);
        }
        else
        {
            (_lnBackwardDx ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(LayerNormKernels.BackwardDx))(
                WarpPerRow(rows), V(x), V(gamma), V(mean), V(rstd), V(dy), V(dx), rows, cols);
            chunks = Math.Min((rows + 31) / 32, 128);
            partials = Workspace("layernorm", 2 * chunks * cols);
            (_lnParamPartials ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(LayerNormKernels.ParamPartials))(
                new KernelConfig(new Index2D((cols + GroupSize - 1) / GroupSize, chunks), new Index2D(GroupSize, 1)),
                V(x), V(mean), V(rstd), V(dy), partials, rows, cols, chunks);
        }
        (_lnParamReduce ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(LayerNormKernels.ParamReduce))(
            new KernelConfig(new Index2D((cols + WarpSize - 1) / WarpSize, 2), new Index2D(GroupSize, 1)), partials, V(dgamma), V(dbeta), cols, chunks);
    }
}

/// <summary>The kernels of GpuKernels.LayerNorm.cs.</summary>
internal static class LayerNormKernels
{
    private const int W = GpuKernels.WarpSize;

    private static int Row => Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx;

    // Register path (cols <= RowMath.MaxCols): the team of `team` lanes at lane t of its team owns
    // row `row`; n = cols for a real row, 0 past the last row (loads nothing, stores nothing).
    private static void TeamRow(int warp, int rows, int cols, int team, out int row, out int t, out int n)
    {
        int lane = Warp.LaneIdx;
        row = warp * (W / team) + lane / team;
        t = lane & (team - 1);
        n = row < rows ? cols : 0;
    }

    // x, y: [rows, cols]; gamma, beta: [cols]; mean, rstd: [rows].
    [GpuKernel]
    public static void Forward(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> mean, ArrayView<float> rstd, int rows, int cols, float eps, int team)
    {
        TeamRow(Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx, rows, cols, team, out int row, out int t, out int n);
        int start = row * cols;
        var v = RowMath.Load(x, start, t, team, n, 0f);
        float mu = RowMath.TeamSum(v.Sum(), team) / cols;
        var d = v.Centered(mu, t, team, n);
        float rinv = 1f / MathF.Sqrt(RowMath.TeamSum(d.Dot(d), team) / cols + eps);
        if (n == 0) return;
        var g = RowMath.Load(gamma, 0, t, team, cols, 0f);
        var b = RowMath.Load(beta, 0, t, team, cols, 0f);
        RowMath.Store(y, start, t, team, n, d.Fma(rinv, 0f).Fma(g, b));
        if (t == 0)
        {
            mean[row] = mu;
            rstd[row] = rinv;
        }
    }

    // x, dy, dx: [rows, cols]; gamma: [cols]; mean, rstd: [rows]; partials: [2, groups, cols].
    [GpuKernel]
    public static void Backward(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> partials, int rows, int cols, int team, int groups)
    {
        // One partial row per team, [teams per group, cols]: at most 64 x 48 = 32 x 96 = 3072.
        var shG = SharedMemory.Allocate<float>(GpuKernels.GroupSize * RowMath.Slots);
        var shB = SharedMemory.Allocate<float>(GpuKernels.GroupSize * RowMath.Slots);
        int teamsPerWarp = W / team;
        var gam = RowMath.Load(gamma, 0, Warp.LaneIdx & (team - 1), team, cols, 0f);
        RowSlots accG = default, accB = default;
        int t = 0;
        // Warp-uniform loop (every lane runs the same trips, so the shuffles stay converged).
        for (int warp = Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx; warp * teamsPerWarp < rows; warp += groups * GpuKernels.WarpsPerGroup)
        {
            TeamRow(warp, rows, cols, team, out int row, out t, out int n);
            int start = row * cols;
            var xv = RowMath.Load(x, start, t, team, n, 0f);
            var dyv = RowMath.Load(dy, start, t, team, n, 0f);    // pad 0: adds nothing below
            var acc = RowMath.Load(dx, start, t, team, n, 0f);
            float mu = n != 0 ? mean[row] : 0f, rinv = n != 0 ? rstd[row] : 0f;
            var xhat = xv.Centered(mu, t, team, n).Fma(rinv, 0f);
            var g = dyv.Mul(gam);
            float meanG = RowMath.TeamSum(g.Sum(), team) / cols, meanGx = RowMath.TeamSum(g.Dot(xhat), team) / cols;
            // rstd (g - meanG - xhat meanGx) + dx
            RowMath.Store(dx, start, t, team, n, g.Fma(1f, -meanG).Add(xhat.Fma(-meanGx, 0f)).Fma(rinv, 0f).Add(acc));
            accG = dyv.Fma(xhat, accG);
            accB = accB.Add(dyv);
        }
        // Team k of the group writes its partials to row k of shG / shB; the group then adds them per column.
        t = Warp.LaneIdx & (team - 1);
        int teamInGroup = Warp.WarpIdx * teamsPerWarp + Warp.LaneIdx / team, teamsPerGroup = GpuKernels.WarpsPerGroup * teamsPerWarp;
        RowMath.Store(shG, teamInGroup * cols, t, team, cols, accG);
        RowMath.Store(shB, teamInGroup * cols, t, team, cols, accB);
        Group.Barrier();
        for (int c = Group.IdxX; c < cols; c += GpuKernels.GroupSize)
        {
            float sg = 0f, sb = 0f;
            for (int k = 0; k < teamsPerGroup; k++)
            {
                sg += shG[k * cols + c];
                sb += shB[k * cols + c];
            }
            partials[Grid.IdxX * cols + c] = sg;
            partials[(groups + Grid.IdxX) * cols + c] = sb;
        }
    }

    // Rows longer than RowMath.MaxCols: one warp per row, the row read in three passes.
    [GpuKernel]
    public static void ForwardLong(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
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

    // partials: [2, chunks, cols] -> dgamma (Grid.IdxY = 0) or dbeta (1) +=.
    [GpuKernel]
    public static void ParamReduce(ArrayView<float> partials, ArrayView<float> dgamma, ArrayView<float> dbeta, int cols, int chunks)
    {
        var sums = SharedMemory.Allocate<float>(GpuKernels.GroupSize);
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx, half = Grid.IdxY;
        int c = Grid.IdxX * W + lane;
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        if (c < cols)
        {
            int k = warp, step = GpuKernels.WarpsPerGroup;
            for (; k + 3 * step < chunks; k += 4 * step)
            {
                s0 += partials[(half * chunks + k) * cols + c];
                s1 += partials[(half * chunks + k + step) * cols + c];
                s2 += partials[(half * chunks + k + 2 * step) * cols + c];
                s3 += partials[(half * chunks + k + 3 * step) * cols + c];
            }
            for (; k < chunks; k += step) s0 += partials[(half * chunks + k) * cols + c];
        }
        sums[warp * W + lane] = (s0 + s1) + (s2 + s3);
        Group.Barrier();
        if (warp != 0 || c >= cols) return;
        float total = 0f;
        for (int w = 0; w < GpuKernels.WarpsPerGroup; w++) total += sums[w * W + lane];
        if (half == 0) dgamma[c] += total;
        else dbeta[c] += total;
    }
}
