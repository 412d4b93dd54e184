using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

// Elementwise, broadcast and data-movement kernels. All are memory-bound single passes, so the
// only tricks are SIMD over the contiguous inner axis and going parallel only when it pays.
internal sealed partial class CpuKernels
{
    public void Fill(DeviceBuffer y, float value, int n) => S(y)[..n].Fill(value);

    public void CopyStrided(DeviceBuffer x, DeviceBuffer y, in StridedCopy l, bool accumulate)
    {
        int rows = l.N0 * l.N1 * l.N2;
        if (rows <= 0 || l.Inner <= 0) return;
        var xs = CpuBuffer.Of(x); var ys = CpuBuffer.Of(y);
        // The loop below uses raw pointers, so check the whole footprint once here.
        if (!Fits(l.SrcOffset, l.S0, l.S1, l.S2, l, xs.Length) || !Fits(l.DstOffset, l.D0, l.D1, l.D2, l, ys.Length))
            throw new ArgumentOutOfRangeException(nameof(l), $"strided copy {l} reaches outside its buffers ({xs.Length} and {ys.Length} floats)");
        Par.For(rows, l.Inner, new CopyJob(xs, ys, l, accumulate, SimdPath), static (in CopyJob j, int start, int end) => CopyRows(j, start, end));
    }

    private static bool Fits(int offset, int s0, int s1, int s2, in StridedCopy l, int length) =>
        offset >= 0 && s0 >= 0 && s1 >= 0 && s2 >= 0 &&
        offset + (long)(l.N0 - 1) * s0 + (long)(l.N1 - 1) * s1 + (long)(l.N2 - 1) * s2 + l.Inner <= length;

    // Runs [start, end) of a strided copy. The run index is split into (i0, i1, i2) once and then
    // stepped: dividing per run (four divisions for runs of 32 floats, the head split of a
    // vit-micro step) cost more than moving the data.
    private static unsafe void CopyRows(in CopyJob j, int start, int end)
    {
        var l = j.Layout;
        int i2 = start % l.N2, i01 = start / l.N2, i1 = i01 % l.N1, i0 = i01 / l.N1;
        fixed (float* xp = j.X.Array, yp = j.Y.Array)
        {
            float* x0 = xp + j.X.Offset, y0 = yp + j.Y.Offset;
            long so = l.SrcOffset + (long)i0 * l.S0 + (long)i1 * l.S1 + (long)i2 * l.S2;
            long dst = l.DstOffset + (long)i0 * l.D0 + (long)i1 * l.D1 + (long)i2 * l.D2;
            for (int r = start; r < end; r++)
            {
                if (j.Accumulate) AddRun(j.Path, x0 + so, y0 + dst, l.Inner);
                else Buffer.MemoryCopy(x0 + so, y0 + dst, (long)l.Inner * sizeof(float), (long)l.Inner * sizeof(float));
                if (++i2 < l.N2) { so += l.S2; dst += l.D2; continue; }
                i2 = 0;
                if (++i1 == l.N1) { i1 = 0; i0++; }
                so = l.SrcOffset + (long)i0 * l.S0 + (long)i1 * l.S1;
                dst = l.DstOffset + (long)i0 * l.D0 + (long)i1 * l.D1;
            }
        }
    }

    // d[i] += s[i] for one run.
    private static unsafe void AddRun(SimdPath path, float* s, float* d, int n)
    {
        int i = 0;
        if (path == SimdPath.Vector512)
            for (; i + 16 <= n; i += 16) Vector512.Store(Vector512.Load(d + i) + Vector512.Load(s + i), d + i);
        for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.Load(d + i) + Vector256.Load(s + i), d + i);
        for (; i < n; i++) d[i] += s[i];
    }

    private readonly record struct CopyJob(CpuBuffer X, CpuBuffer Y, StridedCopy Layout, bool Accumulate, SimdPath Path);

    // x: [outer, mid, inner], b: [outer, inner] (mid == 1: [outer * inner]; inner == 1: [outer]).
    // Alpha scales b in AddBroadcast; Accumulate selects += in MulBroadcast.
    private readonly record struct BroadcastJob(CpuBuffer X, CpuBuffer B, CpuBuffer Y, int Mid, int Inner, float Alpha, bool Accumulate, SimdPath Path);

    public void AddBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, float alpha)
    {
        var job = new BroadcastJob(CpuBuffer.Of(x), CpuBuffer.Of(b), CpuBuffer.Of(y), mid, inner, alpha, false, SimdPath);
        if (inner == 1 && mid > 1)
        {
            // One scalar per (outer) row of mid elements: add a constant over each row.
            Par.For(outer, mid, job, static (in BroadcastJob j, int s, int e) =>
            {
                for (int o = s; o < e; o++)
                    Simd.AddConstant(j.Path, j.X.Span.Slice(o * j.Mid, j.Mid), j.Alpha * j.B.Span[o], j.Y.Span.Slice(o * j.Mid, j.Mid));
            });
            return;
        }
        if (mid == 1)
        {
            Par.For(outer * inner, 1, job, static (in BroadcastJob j, int s, int e) =>
                Simd.AddScaled(j.Path, j.X.Span[s..e], j.B.Span[s..e], j.Y.Span[s..e], j.Alpha));
            return;
        }
        Par.For(outer * mid, inner, job, static (in BroadcastJob j, int s, int e) =>
        {
            for (int r = s; r < e; r++)
            {
                int o = r / j.Mid;
                Simd.AddScaled(j.Path, j.X.Span.Slice(r * j.Inner, j.Inner), j.B.Span.Slice(o * j.Inner, j.Inner), j.Y.Span.Slice(r * j.Inner, j.Inner), j.Alpha);
            }
        });
    }

    public void MulBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, bool accumulate)
    {
        var job = new BroadcastJob(CpuBuffer.Of(x), CpuBuffer.Of(b), CpuBuffer.Of(y), mid, inner, 1f, accumulate, SimdPath);
        if (mid == 1)
        {
            Par.For(outer * inner, 1, job, static (in BroadcastJob j, int s, int e) =>
                Simd.Mul(j.Path, j.X.Span[s..e], j.B.Span[s..e], j.Y.Span[s..e], j.Accumulate));
            return;
        }
        if (inner == 1)
        {
            Par.For(outer, mid, job, static (in BroadcastJob j, int s, int e) =>
            {
                for (int o = s; o < e; o++)
                    Simd.Scale(j.Path, j.X.Span.Slice(o * j.Mid, j.Mid), j.Y.Span.Slice(o * j.Mid, j.Mid), j.B.Span[o], j.Accumulate);
            });
            return;
        }
        Par.For(outer * mid, inner, job, static (in BroadcastJob j, int s, int e) =>
        {
            for (int r = s; r < e; r++)
            {
                int o = r / j.Mid;
                Simd.Mul(j.Path, j.X.Span.Slice(r * j.Inner, j.Inner), j.B.Span.Slice(o * j.Inner, j.Inner), j.Y.Span.Slice(r * j.Inner, j.Inner), j.Accumulate);
            }
        });
    }

    public void SumMid(DeviceBuffer x, DeviceBuffer y, int outer, int mid, int inner, float alpha, bool accumulate) =>
        ReduceMid(x, null, y, outer, mid, inner, alpha, accumulate);

    public void MulSumMid(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, int outer, int mid, int inner, bool accumulate) =>
        ReduceMid(x, w, y, outer, mid, inner, 1f, accumulate);

    // Inner blocks of ReduceMid: one worker sums a 64-wide column block of one outer slice at a time.
    private const int ReduceBlock = 64;

    private readonly record struct ReduceJob(CpuBuffer X, CpuBuffer? W, CpuBuffer Y, int Mid, int Inner, int Blocks, float Alpha, bool Accumulate, SimdPath Path);

    // y[o, i] (=|+=) alpha * sum_m x[o, m, i] (* w[o, m, i]). Parallel over outer when it is wide,
    // otherwise over blocks of the inner axis, so a bias gradient [rows, cols] -> [cols] is split
    // by columns and every worker still streams rows of contiguous memory.
    private void ReduceMid(DeviceBuffer x, DeviceBuffer? w, DeviceBuffer y, int outer, int mid, int inner, float alpha, bool accumulate)
    {
        if (mid == 1)
        {
            // Nothing to reduce: the gradient of a same-shape add or multiply. Summing 1-element
            // rows one call each was most of the elementwise time of a vit-micro step (about 14 of
            // 16 ms per step before this, 5 after, `vit bench --profile`).
            if (w is null) Scale(x, y, outer * inner, alpha, accumulate);
            else MulBroadcast(x, w, y, outer * inner, 1, 1, accumulate);
            return;
        }
        int blocks = (inner + ReduceBlock - 1) / ReduceBlock;
        var job = new ReduceJob(CpuBuffer.Of(x), w is null ? null : CpuBuffer.Of(w), CpuBuffer.Of(y), mid, inner, blocks, alpha, accumulate, SimdPath);
        if (inner == 1)
        {
            Par.For(outer, mid, job, static (in ReduceJob j, int s, int e) =>
            {
                var ys = j.Y.Span;
                for (int o = s; o < e; o++)
                {
                    var row = j.X.Span.Slice(o * j.Mid, j.Mid);
                    float v = j.Alpha * (j.W is null ? Simd.Sum(j.Path, row) : Simd.Dot(j.Path, row, j.W.Span.Slice(o * j.Mid, j.Mid)));
                    ys[o] = j.Accumulate ? ys[o] + v : v;
                }
            });
            return;
        }
        Par.For(outer * blocks, (long)mid * ReduceBlock, job, static (in ReduceJob j, int s, int e) =>
        {
            Span<float> acc = stackalloc float[ReduceBlock];
            int mid = j.Mid, inner = j.Inner;
            for (int t = s; t < e; t++)
            {
                int o = t / j.Blocks, i0 = (t % j.Blocks) * ReduceBlock, len = Math.Min(ReduceBlock, inner - i0);
                var a = acc[..len];
                if (j.W is null && len == ReduceBlock)
                {
                    // The common case (a bias gradient): one full 64-wide block summed in registers.
                    SumColumns64(j.Path, j.X.Span.Slice((o * mid) * inner + i0), inner, mid, a);
                    Simd.Scale(j.Path, a, j.Y.Span.Slice(o * inner + i0, len), j.Alpha, j.Accumulate);
                    continue;
                }
                a.Clear();
                for (int m = 0; m < mid; m++)
                {
                    int at = (o * mid + m) * inner + i0;
                    if (j.W is null) Simd.AddScaled(j.Path, a, j.X.Span.Slice(at, len), a, 1f);
                    else Simd.Mul(j.Path, j.X.Span.Slice(at, len), j.W.Span.Slice(at, len), a, accumulate: true);
                }
                var dst = j.Y.Span.Slice(o * inner + i0, len);
                Simd.Scale(j.Path, a, dst, j.Alpha, j.Accumulate);
            }
        });
    }

    // acc[0..64) = sum over r < rows of x[r * stride + 0..64): the 64 running sums stay in registers
    // (8 ymm or 4 zmm) while the rows stream past; calling a span helper per row cost as much as the adds.
    private static unsafe void SumColumns64(SimdPath path, ReadOnlySpan<float> x, int stride, int rows, Span<float> acc)
    {
        if (rows > 0 && (long)(rows - 1) * stride + ReduceBlock > x.Length) throw new ArgumentOutOfRangeException(nameof(rows));
        fixed (float* x0 = x)
        fixed (float* a = acc)
        {
            float* p = x0;
            if (path == SimdPath.Vector512)
            {
                Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
                for (int r = 0; r < rows; r++, p += stride)
                {
                    s0 += Vector512.Load(p); s1 += Vector512.Load(p + 16); s2 += Vector512.Load(p + 32); s3 += Vector512.Load(p + 48);
                }
                s0.Store(a); s1.Store(a + 16); s2.Store(a + 32); s3.Store(a + 48);
            }
            else
            {
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
                for (int r = 0; r < rows; r++, p += stride)
                {
                    s0 += Vector256.Load(p); s1 += Vector256.Load(p + 8); s2 += Vector256.Load(p + 16); s3 += Vector256.Load(p + 24);
                    s4 += Vector256.Load(p + 32); s5 += Vector256.Load(p + 40); s6 += Vector256.Load(p + 48); s7 += Vector256.Load(p + 56);
                }
                s0.Store(a); s1.Store(a + 8); s2.Store(a + 16); s3.Store(a + 24);
                s4.Store(a + 32); s5.Store(a + 40); s6.Store(a + 48); s7.Store(a + 56);
            }
        }
    }

    // Elementwise ops over [0, n): x (and, for backward passes, dy) in, y out.
    private readonly record struct UnaryJob(CpuBuffer X, CpuBuffer? Dy, CpuBuffer Y, float Alpha, bool Accumulate, SimdPath Path);

    public void Scale(DeviceBuffer x, DeviceBuffer y, int n, float alpha, bool accumulate)
    {
        Par.For(n, 1, new UnaryJob(CpuBuffer.Of(x), null, CpuBuffer.Of(y), alpha, accumulate, SimdPath), static (in UnaryJob j, int s, int e) =>
            Simd.Scale(j.Path, j.X.Span[s..e], j.Y.Span[s..e], j.Alpha, j.Accumulate));
    }

    public void GeluForward(DeviceBuffer x, DeviceBuffer y, int n)
    {
        Par.For(n, 16, new UnaryJob(CpuBuffer.Of(x), null, CpuBuffer.Of(y), 1f, false, SimdPath), static (in UnaryJob j, int s, int e) =>
            Gelu.Forward(j.Path, j.X.Span[s..e], j.Y.Span[s..e]));
    }

    public void GeluBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, int n)
    {
        Par.For(n, 16, new UnaryJob(CpuBuffer.Of(x), CpuBuffer.Of(dy), CpuBuffer.Of(dx), 1f, true, SimdPath), static (in UnaryJob j, int s, int e) =>
            Gelu.Backward(j.Path, j.X.Span[s..e], j.Dy!.Span[s..e], j.Y.Span[s..e]));
    }

    private readonly record struct DropoutJob(CpuBuffer X, CpuBuffer Y, float P, float KeepScale, uint Seed, SimdPath Path);

    public void DropoutForward(DeviceBuffer x, DeviceBuffer y, int n, float p, uint seed)
    {
        Par.For(n, 8, new DropoutJob(CpuBuffer.Of(x), CpuBuffer.Of(y), p, 1f / (1f - p), seed, SimdPath), static (in DropoutJob j, int s, int e) =>
        {
            var xa = j.X.Span; var ya = j.Y.Span;
            for (int i = s; i < e; i++) ya[i] = KernelMath.DropoutKeep(j.Seed, (uint)i, j.P) ? xa[i] * j.KeepScale : 0f;
        });
    }

    public void DropoutBackward(DeviceBuffer dy, DeviceBuffer dx, int n, float p, uint seed)
    {
        // X is dy, Y is dx.
        Par.For(n, 8, new DropoutJob(CpuBuffer.Of(dy), CpuBuffer.Of(dx), p, 1f / (1f - p), seed, SimdPath), static (in DropoutJob j, int s, int e) =>
        {
            var g = j.X.Span; var d = j.Y.Span;
            for (int i = s; i < e; i++) if (KernelMath.DropoutKeep(j.Seed, (uint)i, j.P)) d[i] += g[i] * j.KeepScale;
        });
    }
}
