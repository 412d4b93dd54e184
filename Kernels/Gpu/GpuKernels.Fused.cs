using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// The GPU twins of Kernels/Cpu/CpuKernels.Fused.cs: two ops over the same rows in one kernel.
// - GeluBiasBackward: the geometry of ReduceKernels.SumColumns (a group is 32 columns x 8 row
//   lanes; a warp reads 32 consecutive columns of one row, coalesced), and each thread writes
//   dx = dy GELU'(x) for the elements it sums. With too few column groups to fill the device the
//   rows are cut into parts, each writes a partial row, and SumColumns adds the partial rows into
//   dbias, as ReduceMid does: the same parts and the same order of additions, so the results are
//   the bits of GeluBackward then SumMid (checked on the simulator by FusedMatrixTests).
// - AddLayerNormForward: LayerNormKernels.Forward's register path with the row loaded as a + b and
//   the sum stored on the way; rows longer than RowMath.MaxCols (no ViT has them) take the add
//   and then the plain LayerNorm.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>? _geluBias;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, int, int, float, int>? _addLayerNorm;

    public void GeluBiasBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dbias, int rows, int cols,
        bool accumulateDx, bool accumulateBias)
    {
        if (cols == 0) return;
        if (rows == 0)
        {
            if (!accumulateBias) Fill(dbias, 0f, cols);
            return;
        }
        int groupsX = (cols + WarpSize - 1) / WarpSize;
        int parts = Math.Min((_targetGroups + groupsX - 1) / groupsX, rows / _minRowsPerPart);
        int accDx = accumulateDx ? 1 : 0;
        if (parts < 2)
        {
            LaunchGeluBias(V(x), V(dy), V(dx), V(dbias), rows, cols, 1, accDx, accumulateBias ? 1 : 0);
            return;
        }
        int rowsPerPart = (rows + parts - 1) / parts;
        parts = (rows + rowsPerPart - 1) / rowsPerPart;
        var partial = Workspace("gelu-bias", parts * cols);                 // partial: [parts, cols]
        LaunchGeluBias(V(x), V(dy), V(dx), partial, rows, cols, parts, accDx, 0);
        SumColumns(partial, partial, 0, V(dbias), new BroadcastShape(1, parts, cols), 1f, accumulateBias ? 1 : 0, parts: 1);
    }

    private void LaunchGeluBias(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> sums, int rows, int cols, int parts, int accDx, int accSums) =>
        (_geluBias ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(FusedKernels.GeluBiasBackward))(
            new KernelConfig(new Index2D((cols + WarpSize - 1) / WarpSize, parts), new Index2D(GroupSize, 1)), x, dy, dx, sums, rows, cols, parts, accDx, accSums);

    public void AddLayerNormForward(DeviceBuffer a, DeviceBuffer b, DeviceBuffer sum, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps)
    {
        if (rows == 0 || cols == 0) return;
        if (cols > RowMath.MaxCols)
        {
            AddBroadcast(a, b, sum, rows * cols, 1, 1, 1f);
            LayerNormForward(sum, gamma, beta, y, mean, rstd, rows, cols, eps);
            return;
        }
        int team = RowMath.TeamSize(cols);
        (_addLayerNorm ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, int, int, float, int>(FusedKernels.AddLayerNormForward))(
            new KernelConfig(RowMath.Groups(rows, team), GroupSize), V(a), V(b), V(sum), V(gamma), V(beta), V(y), V(mean), V(rstd), rows, cols, eps, team);
    }
}

/// <summary>The kernels of GpuKernels.Fused.cs.</summary>
internal static class FusedKernels
{
    private const int W = GpuKernels.WarpSize;
    private const int RowLanes = GpuKernels.GroupSize / GpuKernels.WarpSize;
    private const float InvSqrt2 = 0.70710678118654752f;
    private const float InvSqrt2Pi = 0.39894228040143268f;

    /// <summary>
    /// t = dy GELU'(x), dx (=|+=) t, and sums[part cols + c] (=|+=) the sum of t over the rows of
    /// slice `part` of column c; the slices cut [0, rows) into `parts` runs of ceil(rows / parts).
    /// </summary>
    [GpuKernel]
    public static void GeluBiasBackward(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> sums,
        int rows, int cols, int parts, int accumulateDx, int accumulateSums)
    {
        var partial = SharedMemory.Allocate<float>(GpuKernels.GroupSize);
        int lane = Group.IdxX % W, rowLane = Group.IdxX / W;
        int c = Grid.IdxX * W + lane, part = Grid.IdxY;
        int rowsPerPart = (rows + parts - 1) / parts;
        int begin = part * rowsPerPart, end = Math.Min(rows, begin + rowsPerPart);
        float sum = 0f;
        if (c < cols)
            for (int r = begin + rowLane; r < end; r += RowLanes)
            {
                int e = r * cols + c;
                float v = x[e];
                float d = 0.5f * (1f + Erf.Of(v * InvSqrt2)) + v * InvSqrt2Pi * MathF.Exp(-0.5f * v * v);
                float t = d * dy[e];
                dx[e] = accumulateDx != 0 ? dx[e] + t : t;
                sum += t;
            }
        partial[Group.IdxX] = sum;
        Group.Barrier();
        if (rowLane == 0 && c < cols)
        {
            // Unrolled, as in ReduceKernels.SumColumns: ILGPU does not unroll loops.
            float t = partial[lane] + partial[lane + 32] + partial[lane + 64] + partial[lane + 96]
                    + partial[lane + 128] + partial[lane + 160] + partial[lane + 192] + partial[lane + 224];
            int dst = part * cols + c;
            sums[dst] = accumulateSums != 0 ? sums[dst] + t : t;
        }
    }

    /// <summary>sum = a + b and y = LayerNorm(sum), mean and rstd saved: LayerNormKernels.Forward on a + b.</summary>
    [GpuKernel]
    public static void AddLayerNormForward(ArrayView<float> a, ArrayView<float> b, ArrayView<float> sum, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, int rows, int cols, float eps, int team)
    {
        int warp = Grid.IdxX * GpuKernels.WarpsPerGroup + Warp.WarpIdx;
        int lane = Warp.LaneIdx;
        int row = warp * (W / team) + lane / team;
        int t = lane & (team - 1);
        int n = row < rows ? cols : 0;
        int start = row * cols;
        var v = RowMath.Load(a, start, t, team, n, 0f).Add(RowMath.Load(b, start, t, team, n, 0f));
        RowMath.Store(sum, start, t, team, n, v);
        float mu = RowMath.TeamSum(v.Sum(), team) / cols;
        var d = v.Centered(mu, t, team, n);
        float rinv = 1f / MathF.Sqrt(RowMath.TeamSum(d.Dot(d), team) / cols + eps);
        if (n == 0) return;
        var g = RowMath.Load(gamma, 0, t, team, cols, 0f);
        var bt = RowMath.Load(beta, 0, t, team, cols, 0f);
        RowMath.Store(y, start, t, team, n, d.Fma(rinv, 0f).Fma(g, bt));
        if (t == 0)
        {
            mean[row] = mu;
            rstd[row] = rinv;
        }
    }
}
