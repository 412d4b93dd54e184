using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// SumMid and MulSumMid: y[o, i] (=|+=) alpha * sum over m of x[o, m, i] (* w[o, m, i]).
//
// Two shapes matter and they want different threadings:
// - inner > 1 (bias gradients, [rows, cols] -> [cols]): a group is 32 columns x 8 row lanes.
//   Grid = (ceil(inner / 32), outer x parts). The 32 threads of a warp read 32 consecutive
//   columns of one row (coalesced); the 8 warps take every 8th row. Their 8 partials per column
//   meet in shared memory (8 x 32 floats = 1 KB) and warp 0 writes the column: one writer, no
//   atomics.
//   Two stages when that grid is too small to fill the device: a bias gradient of 192 columns
//   is 6 groups, each walking all 8,320 rows of a vit-tiny batch one after another, which leaves
//   most of a 132-SM H100 idle. Then the rows are cut into `parts` slices, stage 1 writes
//   one partial row per slice into scratch ([outer, parts, inner]) and stage 2, the same kernel
//   with parts = 1, sums the partial rows. The split-K matmul (GpuKernels.MatMul.cs) reuses
//   this to sum its K-slice products.
// - inner == 1 (sums along rows): one warp per row of mid elements, lanes stride along the row,
//   a shuffle reduction finishes it. Grid = ceil(outer / 8), 8 warps per group.
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, float, int, int, int>? _reduceColumns;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, float, int, int>? _reduceRows;

    // mid = 1 (the gradient of a same-shape add or multiply) reduces nothing: an elementwise pass,
    // instead of one warp per single-element row.
    public void SumMid(DeviceBuffer x, DeviceBuffer y, int outer, int mid, int inner, float alpha, bool accumulate)
    {
        if (mid == 1) Scale(x, y, outer * inner, alpha, accumulate);
        else ReduceMid(V(x), V(x), 0, V(y), new BroadcastShape(outer, mid, inner), alpha, accumulate);
    }

    public void MulSumMid(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, int outer, int mid, int inner, bool accumulate)
    {
        if (mid == 1) MulBroadcast(x, w, y, outer * inner, 1, 1, accumulate);
        else ReduceMid(V(x), V(w), 1, V(y), new BroadcastShape(outer, mid, inner), 1f, accumulate);
    }

    private void ReduceMid(ArrayView<float> x, ArrayView<float> w, int hasW, ArrayView<float> y, BroadcastShape s, float alpha, bool accumulate)
    {
        if (s.Outer == 0 || s.Inner == 0) return;
        int acc = accumulate ? 1 : 0;
        if (s.Inner == 1)
        {
            (_reduceRows ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, float, int, int>(ReduceKernels.SumRows))(
                WarpPerRow(s.Outer), x, w, y, s, alpha, hasW, acc);
            return;
        }
        int groupsX = (s.Inner + WarpSize - 1) / WarpSize;
        // Slices of at least _minRowsPerPart rows, and only as many as fill the device.
        int parts = (int)Math.Min((_targetGroups + (long)groupsX * s.Outer - 1) / ((long)groupsX * s.Outer), s.Mid / _minRowsPerPart);
        if (parts < 2)
        {
            SumColumns(x, w, hasW, y, s, alpha, acc, parts: 1);
            return;
        }
        int rowsPerPart = (s.Mid + parts - 1) / parts;
        parts = (s.Mid + rowsPerPart - 1) / rowsPerPart;
        var partial = Workspace("reduce-mid", s.Outer * parts * s.Inner);             // partial: [outer, parts, inner]
        SumColumns(x, w, hasW, partial, s, 1f, 0, parts);
        SumColumns(partial, partial, 0, y, new BroadcastShape(s.Outer, parts, s.Inner), alpha, acc, parts: 1);
    }

    private void SumColumns(ArrayView<float> x, ArrayView<float> w, int hasW, ArrayView<float> y, BroadcastShape s, float alpha, int acc, int parts) =>
        (_reduceColumns ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, BroadcastShape, float, int, int, int>(ReduceKernels.SumColumns))(
            new KernelConfig(new Index2D((s.Inner + WarpSize - 1) / WarpSize, s.Outer * parts), new Index2D(GroupSize, 1)), x, w, y, s, alpha, hasW, acc, parts);
}

/// <summary>The kernels of GpuKernels.Reduce.cs.</summary>
internal static class ReduceKernels
{
    private const int RowLanes = GpuKernels.GroupSize / GpuKernels.WarpSize;

    /// <summary>
    /// y[(o parts + part) inner + i] (=|+=) alpha sum over the rows m of slice `part` of x[o, m, i]
    /// (* w[o, m, i]); the slices cut [0, mid) into `parts` runs of ceil(mid / parts) rows.
    /// </summary>
    [GpuKernel]
    public static void SumColumns(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, BroadcastShape s, float alpha, int hasW, int accumulate, int parts)
    {
        var partial = SharedMemory.Allocate<float>(GpuKernels.GroupSize);
        int lane = Group.IdxX % GpuKernels.WarpSize, rowLane = Group.IdxX / GpuKernels.WarpSize;
        int i = Grid.IdxX * GpuKernels.WarpSize + lane, o = Grid.IdxY / parts, part = Grid.IdxY - o * parts;
        int rowsPerPart = (s.Mid + parts - 1) / parts;
        int mBegin = part * rowsPerPart, mEnd = Math.Min(s.Mid, mBegin + rowsPerPart);
        float sum = 0f;
        if (i < s.Inner)
        {
            int at = o * s.Mid * s.Inner + i;
            for (int m = mBegin + rowLane; m < mEnd; m += RowLanes)
            {
                int e = at + m * s.Inner;
                sum += hasW != 0 ? x[e] * w[e] : x[e];
            }
        }
        partial[Group.IdxX] = sum;
        Group.Barrier();
        if (rowLane == 0 && i < s.Inner)
        {
            // Unrolled: ILGPU does not unroll loops, and this runs once per column.
            float t = partial[lane] + partial[lane + 32] + partial[lane + 64] + partial[lane + 96]
                    + partial[lane + 128] + partial[lane + 160] + partial[lane + 192] + partial[lane + 224];
            int dst = Grid.IdxY * s.Inner + i; // (o parts + part) inner + i
            y[dst] = accumulate != 0 ? y[dst] + alpha * t : alpha * t;
        }
    }

    [GpuKernel]
    public static void SumRows(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, BroadcastShape s, float alpha, int hasW, int accumulate)
    {
        int row = Grid.IdxX * RowLanes + Warp.WarpIdx;
        int lane = Warp.LaneIdx;
        float sum = 0f;
        if (row < s.Outer)
            for (int m = lane; m < s.Mid; m += GpuKernels.WarpSize)
            {
                int e = row * s.Mid + m;
                sum += hasW != 0 ? x[e] * w[e] : x[e];
            }
        sum = WarpMath.Sum(sum);
        if (row < s.Outer && lane == 0)
            y[row] = accumulate != 0 ? y[row] + alpha * sum : alpha * sum;
    }
}
