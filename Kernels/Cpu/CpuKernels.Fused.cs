namespace ViTScratch.Kernels.Cpu;

// Fused kernels: two ops of the model that would each make a pass over the same rows, done in
// one pass while the row is in L1 (docs/cpu-kernels.md, "Fusions").
// - GeluBiasBackward: the MLP's GELU backward and its Linear's bias gradient. Unfused, the
//   backward zero-filled dh, read-modified-wrote it (GeluBackward's +=) and read it again for the
//   bias's column sum (SumMid): three passes over [rows, hidden] for one.
// - AddLayerNormForward: the residual add and the LayerNorm after it. Unfused, LayerNorm read the
//   sum back from memory right after the add wrote it.
public sealed partial class CpuKernels
{
    // GeluBiasBackward's per-piece column sums; grown, never shrunk (a training step allocates nothing).
    private float[] _biasPartials = [];

    private readonly record struct GeluBiasJob(CpuBuffer X, CpuBuffer Dy, CpuBuffer Dx, float[] Partials,
        int Rows, int Cols, int Pieces, bool Accumulate, SimdPath Path);

    public void GeluBiasBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dbias, int rows, int cols,
        bool accumulateDx, bool accumulateBias)
    {
        var db = CpuBuffer.Of(dbias).Span[..cols];
        if (rows == 0 || cols == 0)
        {
            if (!accumulateBias) db.Clear();
            return;
        }
        // Contiguous pieces of rows, each with its own column-sum row: several per worker so a
        // slower core takes fewer (as the matmul does), and a fixed row split, so the sums come out
        // the same whichever thread ran which piece.
        int pieces = Math.Max(1, Math.Min(rows, Par.Workers * ChunksPerWorker));
        if (_biasPartials.Length < pieces * cols) _biasPartials = new float[pieces * cols];
        Array.Clear(_biasPartials, 0, pieces * cols);
        var job = new GeluBiasJob(CpuBuffer.Of(x), CpuBuffer.Of(dy), CpuBuffer.Of(dx), _biasPartials, rows, cols, pieces, accumulateDx, SimdPath);
        Par.For(pieces, (long)rows / pieces * cols * 16, job, static (in GeluBiasJob j, int p0, int p1) =>
        {
            int cols = j.Cols;
            for (int p = p0; p < p1; p++)
            {
                int start = (int)((long)j.Rows * p / j.Pieces), end = (int)((long)j.Rows * (p + 1) / j.Pieces);
                var sum = j.Partials.AsSpan(p * cols, cols);
                for (int r = start; r < end; r++)
                    Gelu.BackwardWithSum(j.Path, j.X.Span.Slice(r * cols, cols), j.Dy.Span.Slice(r * cols, cols),
                        j.Dx.Span.Slice(r * cols, cols), j.Accumulate, sum);
            }
        }, chunks: pieces);
        if (!accumulateBias) db.Clear();
        for (int p = 0; p < pieces; p++) Simd.AddScaled(SimdPath, db, _biasPartials.AsSpan(p * cols, cols), db, 1f);
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
