namespace ViTScratch.Kernels.Cpu;

// Fused kernels: two ops of the model that would each make a pass over the same rows, done in
// one pass while the row is in L1 (docs/cpu-kernels.md, "Fusions").
// - GeluBiasBackward: the MLP's GELU backward and its Linear's bias gradient. Unfused, the
//   backward zero-filled dh, read-modified-wrote it (GeluBackward's +=) and read it again for the
//   bias's column sum (SumMid): three passes over [rows, hidden] for one. The column sums run in
//   SumMid's order, so the results are the unfused bits.
// - AddLayerNormForward: the residual add and the LayerNorm after it. Unfused, LayerNorm read the
//   sum back from memory right after the add wrote it.
public sealed partial class CpuKernels
{
    private readonly record struct GeluBiasJob(CpuBuffer X, CpuBuffer Dy, CpuBuffer Dx, CpuBuffer Dbias,
        int Rows, int Cols, bool AccumulateDx, bool AccumulateBias, SimdPath Path);

    public void GeluBiasBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dbias, int rows, int cols,
        bool accumulateDx, bool accumulateBias)
    {
        if (cols == 0) return;
        // Split by blocks of ReduceBlock columns, each summed over all rows in row order, exactly
        // as SumMid sums a bias gradient: the fused kernel gives the bits of GeluBackward then
        // SumMid, on any number of cores. (Split by rows, the partial sums came out in another
        // order, and samples/TrainOwnTensors, whose 150 steps are chaotic in the last bit, ended at
        // 85-99.5% accuracy depending on the split.)
        int blocks = (cols + ReduceBlock - 1) / ReduceBlock;
        var job = new GeluBiasJob(CpuBuffer.Of(x), CpuBuffer.Of(dy), CpuBuffer.Of(dx), CpuBuffer.Of(dbias), rows, cols, accumulateDx, accumulateBias, SimdPath);
        Par.For(blocks, (long)rows * ReduceBlock * 16, job, static (in GeluBiasJob j, int b0, int b1) =>
        {
            Span<float> acc = stackalloc float[ReduceBlock];
            int cols = j.Cols;
            for (int blk = b0; blk < b1; blk++)
            {
                int c0 = blk * ReduceBlock, len = Math.Min(ReduceBlock, cols - c0);
                var sum = acc[..len];
                sum.Clear();
                for (int r = 0; r < j.Rows; r++)
                {
                    int at = r * cols + c0;
                    Gelu.BackwardWithSum(j.Path, j.X.Span.Slice(at, len), j.Dy.Span.Slice(at, len), j.Dx.Span.Slice(at, len), j.AccumulateDx, sum);
                }
                var db = j.Dbias.Span.Slice(c0, len);
                if (j.AccumulateBias) Simd.AddScaled(j.Path, db, sum, db, 1f);
                else sum.CopyTo(db);
            }
        }, chunks: blocks);
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
                // a + b as AddBroadcast computes it (a fused multiply-add by 1: exact product, one rounding).
                Simd.AddScaled(j.Path, j.A.Span.Slice(r * cols, cols), j.B.Span.Slice(r * cols, cols), sr, 1f);
                ForwardRow(j.Path, sr, j.Gamma.Span, j.Beta.Span, j.Y.Span.Slice(r * cols, cols), j.Eps, out j.Mean.Span[r], out j.Rstd.Span[r]);
            }
        });
    }
}
