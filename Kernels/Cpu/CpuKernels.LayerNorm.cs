using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

// LayerNorm over the last axis. Forward saves mean and rstd per row so the backward pass does
// not recompute them. Backward, with xhat = (x - mean) * rstd and g = dy * gamma:
//   dx     += rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dgamma += sum over rows of dy * xhat,   dbeta += sum over rows of dy
// dgamma and dbeta are reduced in two stages: each worker sums its own rows into a private
// partial, then the partials are added once. No locks, no contended atomics.
public sealed partial class CpuKernels
{
    private readonly record struct LayerNormJob(CpuBuffer X, CpuBuffer Gamma, CpuBuffer Beta, CpuBuffer Y,
        CpuBuffer Mean, CpuBuffer Rstd, int Cols, float Eps);

    public void LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps)
    {
        var job = new LayerNormJob(CpuBuffer.Of(x), CpuBuffer.Of(gamma), CpuBuffer.Of(beta), CpuBuffer.Of(y),
            CpuBuffer.Of(mean), CpuBuffer.Of(rstd), cols, eps);
        Par.For(rows, cols * 6L, job, static (in LayerNormJob j, int s, int e) =>
        {
            int cols = j.Cols;
            var g = j.Gamma.Span; var b = j.Beta.Span;
            for (int r = s; r < e; r++)
            {
                var xr = j.X.Span.Slice(r * cols, cols);
                var yr = j.Y.Span.Slice(r * cols, cols);
                float mu = Simd.Sum(xr) / cols;
                Simd.AddConstant(xr, -mu, yr);                 // yr = x - mean (reused as scratch)
                float var_ = Simd.Dot(yr, yr) / cols;           // two-pass variance: no cancellation
                float rinv = 1f / MathF.Sqrt(var_ + j.Eps);
                int c = 0;
                if (Vector256.IsHardwareAccelerated)
                    for (; c <= cols - 8; c += 8)
                        (Vector256.Create(yr.Slice(c, 8)) * rinv * Vector256.Create(g.Slice(c, 8)) + Vector256.Create(b.Slice(c, 8))).CopyTo(yr.Slice(c, 8));
                for (; c < cols; c++) yr[c] = yr[c] * rinv * g[c] + b[c];
                j.Mean.Span[r] = mu;
                j.Rstd.Span[r] = rinv;
            }
        });
    }

    // Scratch holds, per partial w, 4 x Cols floats: dgamma partial, dbeta partial, then the xhat
    // row and the g row of the row being processed.
    private readonly record struct LayerNormBackwardJob(CpuBuffer X, CpuBuffer Gamma, CpuBuffer Mean, CpuBuffer Rstd,
        CpuBuffer Dy, CpuBuffer Dx, float[] Scratch, int Rows, int Cols, int Partials);

    public void LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy,
        DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols)
    {
        // One partial per worker: Par.For over the partials hands each worker exactly one of them
        // (or all of them, in order, when the job is small enough to run inline).
        int partials = Math.Max(1, Math.Min(Par.Workers, rows));
        float[] scratch = Scratch(partials * 4 * cols);
        Array.Clear(scratch, 0, partials * 4 * cols);
        var job = new LayerNormBackwardJob(CpuBuffer.Of(x), CpuBuffer.Of(gamma), CpuBuffer.Of(mean), CpuBuffer.Of(rstd),
            CpuBuffer.Of(dy), CpuBuffer.Of(dx), scratch, rows, cols, partials);
        Par.For(partials, (long)rows / partials * cols * 8, job, static (in LayerNormBackwardJob j, int w0, int w1) =>
        {
            int rows = j.Rows, cols = j.Cols;
            var gam = j.Gamma.Span;
            for (int w = w0; w < w1; w++)
            {
                int start = (int)((long)rows * w / j.Partials), end = (int)((long)rows * (w + 1) / j.Partials);
                var part = j.Scratch.AsSpan(w * 4 * cols, 4 * cols);
                var pg = part[..cols]; var pb = part.Slice(cols, cols);
                var xhat = part.Slice(2 * cols, cols); var g = part.Slice(3 * cols, cols);
                for (int r = start; r < end; r++)
                {
                    var xr = j.X.Span.Slice(r * cols, cols);
                    var gr = j.Dy.Span.Slice(r * cols, cols);
                    var dr = j.Dx.Span.Slice(r * cols, cols);
                    float mu = j.Mean.Span[r], rinv = j.Rstd.Span[r];
                    for (int c = 0; c < cols; c++) xhat[c] = (xr[c] - mu) * rinv;
                    Simd.Mul(gr, gam, g, accumulate: false);
                    float meanG = Simd.Sum(g) / cols;
                    float meanGx = Simd.Dot(g, xhat) / cols;
                    for (int c = 0; c < cols; c++) dr[c] += rinv * (g[c] - meanG - xhat[c] * meanGx);
                    Simd.Mul(gr, xhat, pg, accumulate: true);
                    Simd.AddScaled(pb, gr, pb, 1f);
                }
            }
        });
        var dgs = CpuBuffer.Of(dgamma).Span; var dbs = CpuBuffer.Of(dbeta).Span;
        for (int w = 0; w < partials; w++)
        {
            Simd.AddScaled(dgs, scratch.AsSpan(w * 4 * cols, cols), dgs, 1f);
            Simd.AddScaled(dbs, scratch.AsSpan(w * 4 * cols + cols, cols), dbs, 1f);
        }
    }
}
