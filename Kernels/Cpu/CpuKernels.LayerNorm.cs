using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

// LayerNorm over the last axis. Forward saves mean and rstd per row so the backward pass does
// not recompute them. Backward, with xhat = (x - mean) * rstd and g = dy * gamma:
//   dx     += rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dgamma += sum over rows of dy * xhat,   dbeta += sum over rows of dy
// Each row takes two vectorised sweeps (BackwardRowSums, BackwardRowDx).
// dgamma and dbeta are reduced in two stages: each worker sums its own rows into a private
// partial, then the partials are added once. No locks, no contended atomics.
internal sealed partial class CpuKernels
{
    private readonly record struct LayerNormJob(CpuBuffer X, CpuBuffer Gamma, CpuBuffer Beta, CpuBuffer Y,
        CpuBuffer Mean, CpuBuffer Rstd, int Cols, float Eps, SimdPath Path);

    public void LayerNormForward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y,
        DeviceBuffer mean, DeviceBuffer rstd, int rows, int cols, float eps)
    {
        var job = new LayerNormJob(CpuBuffer.Of(x), CpuBuffer.Of(gamma), CpuBuffer.Of(beta), CpuBuffer.Of(y),
            CpuBuffer.Of(mean), CpuBuffer.Of(rstd), cols, eps, SimdPath);
        Par.For(rows, cols * 6L, job, static (in LayerNormJob j, int s, int e) =>
        {
            int cols = j.Cols;
            for (int r = s; r < e; r++)
                ForwardRow(j.Path, j.X.Span.Slice(r * cols, cols), j.Gamma.Span, j.Beta.Span, j.Y.Span.Slice(r * cols, cols), j.Eps,
                    out j.Mean.Span[r], out j.Rstd.Span[r]);
        });
    }

    // One row of the forward pass (shared with AddLayerNormForward, so the fused and the plain
    // kernel give the same bits for the same row).
    private static void ForwardRow(SimdPath path, ReadOnlySpan<float> xr, ReadOnlySpan<float> g, ReadOnlySpan<float> b, Span<float> yr, float eps,
        out float mean, out float rstd) =>
        NormalizeRow(path, xr, Simd.Sum(path, xr), g, b, yr, eps, out mean, out rstd);

    // The rest of a forward row once the sum of xr is known: two passes over the row. It was three,
    // the last 8 wide on AVX-512 too; with the residual add folded into the sum (Simd.AddAndSum),
    // the fused add + layernorm (8-12% of a vit-tiny inference step) ran 1.3-2.1x as fast per
    // call, with the same bits (docs/log/2026-performance-log.md).
    private static void NormalizeRow(SimdPath path, ReadOnlySpan<float> xr, float sum, ReadOnlySpan<float> g, ReadOnlySpan<float> b, Span<float> yr, float eps,
        out float mean, out float rstd)
    {
        int cols = xr.Length;
        float mu = sum / cols;
        // yr = x - mean (reused as scratch); two-pass variance: no cancellation.
        float var_ = Simd.CenterAndSumSquares(path, xr, mu, yr) / cols;
        float rinv = 1f / MathF.Sqrt(var_ + eps);
        ref float y = ref MemoryMarshal.GetReference(yr);
        ref float gr = ref MemoryMarshal.GetReference(g);
        ref float br = ref MemoryMarshal.GetReference(b);
        int c = 0;
        if (path == SimdPath.Vector512)
            for (; c <= cols - 16; c += 16)
                Vector512.StoreUnsafe(Vector512.LoadUnsafe(ref y, (nuint)c) * rinv * Vector512.LoadUnsafe(ref gr, (nuint)c) + Vector512.LoadUnsafe(ref br, (nuint)c), ref y, (nuint)c);
        if (Vector256.IsHardwareAccelerated)
            for (; c <= cols - 8; c += 8)
                Vector256.StoreUnsafe(Vector256.LoadUnsafe(ref y, (nuint)c) * rinv * Vector256.LoadUnsafe(ref gr, (nuint)c) + Vector256.LoadUnsafe(ref br, (nuint)c), ref y, (nuint)c);
        for (; c < cols; c++) yr[c] = yr[c] * rinv * g[c] + b[c];
        mean = mu;
        rstd = rinv;
    }

    // Partials holds, per partial w, 4 x Cols floats: dgamma partial, dbeta partial, then the xhat
    // row and the g row of the row being processed.
    private readonly record struct LayerNormBackwardJob(CpuBuffer X, CpuBuffer Gamma, CpuBuffer Mean, CpuBuffer Rstd,
        CpuBuffer Dy, CpuBuffer Dx, float[] Partials, int Rows, int Cols, int PartialCount, SimdPath Path);

    public void LayerNormBackward(DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean, DeviceBuffer rstd, DeviceBuffer dy,
        DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta, int rows, int cols)
    {
        // One partial per worker: Par.For over the partials hands each worker exactly one of them
        // (or all of them, in order, when the job is small enough to run inline).
        int partials = Math.Max(1, Math.Min(Par.Workers, rows));
        float[] partialRows = LayerNormPartials(partials * 4 * cols);
        Array.Clear(partialRows, 0, partials * 4 * cols);
        var job = new LayerNormBackwardJob(CpuBuffer.Of(x), CpuBuffer.Of(gamma), CpuBuffer.Of(mean), CpuBuffer.Of(rstd),
            CpuBuffer.Of(dy), CpuBuffer.Of(dx), partialRows, rows, cols, partials, SimdPath);
        Par.For(partials, (long)rows / partials * cols * 8, job, static (in LayerNormBackwardJob j, int w0, int w1) =>
        {
            int rows = j.Rows, cols = j.Cols;
            var gam = j.Gamma.Span;
            for (int w = w0; w < w1; w++)
            {
                int start = (int)((long)rows * w / j.PartialCount), end = (int)((long)rows * (w + 1) / j.PartialCount);
                var part = j.Partials.AsSpan(w * 4 * cols, 4 * cols);
                var pg = part[..cols]; var pb = part.Slice(cols, cols);
                var xhat = part.Slice(2 * cols, cols); var g = part.Slice(3 * cols, cols);
                for (int r = start; r < end; r++)
                {
                    var xr = j.X.Span.Slice(r * cols, cols);
                    var gr = j.Dy.Span.Slice(r * cols, cols);
                    var dr = j.Dx.Span.Slice(r * cols, cols);
                    float rinv = j.Rstd.Span[r];
                    var (sumG, sumGx) = BackwardRowSums(j.Path, xr, gr, gam, j.Mean.Span[r], rinv, xhat, g, pg, pb);
                    BackwardRowDx(j.Path, xhat, g, dr, rinv, sumG / cols, sumGx / cols);
                }
            }
        });
        var dgs = CpuBuffer.Of(dgamma).Span; var dbs = CpuBuffer.Of(dbeta).Span;
        for (int w = 0; w < partials; w++)
        {
            Simd.AddScaled(SimdPath, dgs, partialRows.AsSpan(w * 4 * cols, cols), dgs, 1f);
            Simd.AddScaled(SimdPath, dbs, partialRows.AsSpan(w * 4 * cols + cols, cols), dbs, 1f);
        }
    }

    // One row, first pass: xhat = (x - mean) rstd and g = dy gamma into scratch rows, the row sums
    // of g and g xhat, and this worker's dgamma += dy xhat, dbeta += dy. One sweep over the row
    // (it was five before, two of them scalar: LayerNormBackward took 5% of a vit-micro step).
    private static (float SumG, float SumGx) BackwardRowSums(SimdPath path, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma,
        float mean, float rstd, Span<float> xhat, Span<float> g, Span<float> dgamma, Span<float> dbeta)
    {
        int cols = x.Length, c = 0;
        float sumG = 0f, sumGx = 0f;
        if (path == SimdPath.Vector512)
        {
            Vector512<float> sg = default, sgx = default, mu = Vector512.Create(mean), rs = Vector512.Create(rstd);
            for (; c <= cols - 16; c += 16)
            {
                var xh = (Vector512.Create(x.Slice(c, 16)) - mu) * rs;
                var d = Vector512.Create(dy.Slice(c, 16));
                var gv = d * Vector512.Create(gamma.Slice(c, 16));
                xh.CopyTo(xhat.Slice(c, 16));
                gv.CopyTo(g.Slice(c, 16));
                sg += gv;
                sgx = Vector512.FusedMultiplyAdd(gv, xh, sgx);
                Vector512.FusedMultiplyAdd(d, xh, Vector512.Create(dgamma.Slice(c, 16))).CopyTo(dgamma.Slice(c, 16));
                (Vector512.Create(dbeta.Slice(c, 16)) + d).CopyTo(dbeta.Slice(c, 16));
            }
            sumG = Vector512.Sum(sg);
            sumGx = Vector512.Sum(sgx);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> sg = default, sgx = default, mu = Vector256.Create(mean), rs = Vector256.Create(rstd);
            for (; c <= cols - 8; c += 8)
            {
                var xh = (Vector256.Create(x.Slice(c, 8)) - mu) * rs;
                var d = Vector256.Create(dy.Slice(c, 8));
                var gv = d * Vector256.Create(gamma.Slice(c, 8));
                xh.CopyTo(xhat.Slice(c, 8));
                gv.CopyTo(g.Slice(c, 8));
                sg += gv;
                sgx = Vector256.FusedMultiplyAdd(gv, xh, sgx);
                Vector256.FusedMultiplyAdd(d, xh, Vector256.Create(dgamma.Slice(c, 8))).CopyTo(dgamma.Slice(c, 8));
                (Vector256.Create(dbeta.Slice(c, 8)) + d).CopyTo(dbeta.Slice(c, 8));
            }
            sumG = Vector256.Sum(sg);
            sumGx = Vector256.Sum(sgx);
        }
        for (; c < cols; c++)
        {
            float xh = (x[c] - mean) * rstd, gv = dy[c] * gamma[c];
            xhat[c] = xh;
            g[c] = gv;
            sumG += gv;
            sumGx += gv * xh;
            dgamma[c] += dy[c] * xh;
            dbeta[c] += dy[c];
        }
        return (sumG, sumGx);
    }

    // One row, second pass: dx += rstd (g - mean(g) - xhat mean(g xhat)).
    private static void BackwardRowDx(SimdPath path, ReadOnlySpan<float> xhat, ReadOnlySpan<float> g, Span<float> dx, float rstd, float meanG, float meanGx)
    {
        int cols = dx.Length, c = 0;
        if (path == SimdPath.Vector512)
        {
            Vector512<float> rs = Vector512.Create(rstd), mg = Vector512.Create(meanG), mgx = Vector512.Create(meanGx);
            for (; c <= cols - 16; c += 16)
            {
                var t = Vector512.Create(g.Slice(c, 16)) - mg - Vector512.Create(xhat.Slice(c, 16)) * mgx;
                Vector512.FusedMultiplyAdd(rs, t, Vector512.Create(dx.Slice(c, 16))).CopyTo(dx.Slice(c, 16));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> rs = Vector256.Create(rstd), mg = Vector256.Create(meanG), mgx = Vector256.Create(meanGx);
            for (; c <= cols - 8; c += 8)
            {
                var t = Vector256.Create(g.Slice(c, 8)) - mg - Vector256.Create(xhat.Slice(c, 8)) * mgx;
                Vector256.FusedMultiplyAdd(rs, t, Vector256.Create(dx.Slice(c, 8))).CopyTo(dx.Slice(c, 8));
            }
        }
        for (; c < cols; c++) dx[c] += rstd * (g[c] - meanG - xhat[c] * meanGx);
    }
}
