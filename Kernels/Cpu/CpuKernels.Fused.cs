using System.Buffers;

namespace ViTScratch.Kernels.Cpu;

// Fused kernels: two ops of the model that would each make a pass over the same rows, done in
// one pass while the row is in L1 (docs/cpu-kernels.md, "Fusions").
// - GeluBiasBackward: the MLP's GELU backward and its Linear's bias gradient. Unfused, the
//   backward zero-filled dh, read-modified-wrote it (GeluBackward's +=) and read it again for the
//   bias's column sum (SumMid): three passes over [rows, hidden] for one. The column sums run in
//   SumMid's order, so the results are the unfused bits.
// - AddLayerNormForward: the residual add and the LayerNorm after it. Unfused, LayerNorm read the
//   sum back from memory right after the add wrote it.
internal sealed partial class CpuKernels
{
    public void GeluBiasBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dbias, int rows, int cols,
        bool accumulateDx, bool accumulateBias)
    {
        if (cols == 0) return;
        // One sweep, row after row, on the calling thread. The bias gradient must be summed down
        // each column in row order, as SumMid sums it, for the fused kernel to give the unfused
        // bits (split by rows, the partial sums came out in another order, and
        // samples/TrainOwnTensors, whose 150 steps are chaotic in the last bit, ended at 85-99.5%
        // accuracy depending on the split). Split by columns across the two cores, the kernel ran
        // 3-4x slower than on one (the loaded host: a piece waits for a descheduled worker);
        // on one it is 1.7x faster than the three unfused passes on two (docs/performance.md).
        var xs = CpuBuffer.Of(x).Span; var gs = CpuBuffer.Of(dy).Span; var ds = CpuBuffer.Of(dx).Span;
        var db = CpuBuffer.Of(dbias).Span[..cols];
        float[]? rented = cols > 2048 ? ArrayPool<float>.Shared.Rent(cols) : null;
        Span<float> sum = rented is null ? stackalloc float[cols] : rented.AsSpan(0, cols);
        sum.Clear();
        for (int r = 0; r < rows; r++)
        {
            int at = r * cols;
            Gelu.BackwardWithSum(SimdPath, xs.Slice(at, cols), gs.Slice(at, cols), ds.Slice(at, cols), accumulateDx, sum);
        }
        if (accumulateBias) Simd.AddScaled(SimdPath, db, sum, db, 1f);
        else sum.CopyTo(db);
        if (rented is not null) ArrayPool<float>.Shared.Return(rented);
    }

    private readonly record struct AddLayerNormJob(CpuBuffer A, CpuBuffer B, CpuBuffer Sum, CpuBuffer Gamma, CpuBuffer Beta, CpuBuffer Y,
        CpuBuffer Mean, CpuBuffer Rstd, int Cols, float Eps, SimdPath Path);

    public void AddLayerNormForward(DeviceBuffer a, DeviceBuffer b, DeviceBuffer sum, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps)
    {
        var job = new AddLayerNormJob(CpuBuffer.Of(a), CpuBuffer.Of(b), CpuBuffer.Of(sum), CpuBuffer.Of(gamma), CpuBuffer.Of(beta),
            CpuBuffer.Of(y), CpuBuffer.Of(mean), CpuBuffer.Of(rstd), cols, eps, SimdPath);
        Par.For(rows, cols * 7L, job, static (in AddLayerNormJob j, int s, int e) =>
        {
            int cols = j.Cols;
            for (int r = s; r < e; r++)
            {
                var sr = j.Sum.Span.Slice(r * cols, cols);
                // a + b as AddBroadcast computes it (there a fused multiply-add by 1: exact product,
                // one rounding, the same sum), and the row's sum as LayerNormForward sums it.
                float total = Simd.AddAndSum(j.Path, j.A.Span.Slice(r * cols, cols), j.B.Span.Slice(r * cols, cols), sr);
                NormalizeRow(j.Path, sr, total, j.Gamma.Span, j.Beta.Span, j.Y.Span.Slice(r * cols, cols), j.Eps, out j.Mean.Span[r], out j.Rstd.Span[r]);
            }
        });
    }
}
