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
    public void LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps)
    {
        var xs = CpuBuffer.Of(x); var gs = CpuBuffer.Of(gamma); var bs = CpuBuffer.Of(beta);
        var ys = CpuBuffer.Of(y); var ms = CpuBuffer.Of(mean); var rs = CpuBuffer.Of(rstd);
        Par.For(rows, cols * 6L, (s, e) =>
        {
            var g = gs.Span; var b = bs.Span;
            for (int r = s; r < e; r++)
            {
                var xr = xs.Span.Slice(r * cols, cols);
                var yr = ys.Span.Slice(r * cols, cols);
                float mu = Simd.Sum(xr) / cols;
                Simd.AddConstant(xr, -mu, yr);                 // yr = x - mean (reused as scratch)
                float var_ = Simd.Dot(yr, yr) / cols;           // two-pass variance: no cancellation
                float rinv = 1f / MathF.Sqrt(var_ + eps);
                int c = 0;
                if (Vector256.IsHardwareAccelerated)
                    for (; c <= cols - 8; c += 8)
                        (Vector256.Create(yr.Slice(c, 8)) * rinv * Vector256.Create(g.Slice(c, 8)) + Vector256.Create(b.Slice(c, 8))).CopyTo(yr.Slice(c, 8));
                for (; c < cols; c++) yr[c] = yr[c] * rinv * g[c] + b[c];
                ms.Span[r] = mu;
                rs.Span[r] = rinv;
            }
        });
    }

    public void LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy,
        DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols)
    {
        var xs = CpuBuffer.Of(x); var gs = CpuBuffer.Of(gamma); var ms = CpuBuffer.Of(mean); var rs = CpuBuffer.Of(rstd);
        var dys = CpuBuffer.Of(dy); var dxs = CpuBuffer.Of(dx);
        int workers = Math.Max(1, Math.Min(Par.Workers, rows));
        // Layout of the scratch: per worker, cols of dgamma partials, cols of dbeta partials, then
        // cols of the xhat row and cols of g for the row being processed.
        float[] scratch = Scratch(workers * 4 * cols);
        Array.Clear(scratch, 0, workers * 4 * cols);
        Parallel.For(0, workers, w =>
        {
            int start = (int)((long)rows * w / workers), end = (int)((long)rows * (w + 1) / workers);
            var part = scratch.AsSpan(w * 4 * cols, 4 * cols);
            var pg = part[..cols]; var pb = part.Slice(cols, cols);
            var xhat = part.Slice(2 * cols, cols); var g = part.Slice(3 * cols, cols);
            var gam = gs.Span;
            for (int r = start; r < end; r++)
            {
                var xr = xs.Span.Slice(r * cols, cols);
                var gr = dys.Span.Slice(r * cols, cols);
                var dr = dxs.Span.Slice(r * cols, cols);
                float mu = ms.Span[r], rinv = rs.Span[r];
                for (int c = 0; c < cols; c++) xhat[c] = (xr[c] - mu) * rinv;
                Simd.Mul(gr, gam, g, accumulate: false);
                float meanG = Simd.Sum(g) / cols;
                float meanGx = Simd.Dot(g, xhat) / cols;
                for (int c = 0; c < cols; c++) dr[c] += rinv * (g[c] - meanG - xhat[c] * meanGx);
                Simd.Mul(gr, xhat, pg, accumulate: true);
                Simd.AddScaled(pb, gr, pb, 1f);
            }
        });
        var dgs = CpuBuffer.Of(dgamma).Span; var dbs = CpuBuffer.Of(dbeta).Span;
        for (int w = 0; w < workers; w++)
        {
            Simd.AddScaled(dgs, scratch.AsSpan(w * 4 * cols, cols), dgs, 1f);
            Simd.AddScaled(dbs, scratch.AsSpan(w * 4 * cols + cols, cols), dbs, 1f);
        }
    }
}
