using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

// Elementwise, broadcast and data-movement kernels. All are memory-bound single passes, so the
// only tricks are SIMD over the contiguous inner axis and going parallel only when it pays.
public sealed partial class CpuKernels
{
    public void Fill(DeviceBuffer y, float value, int n) => S(y)[..n].Fill(value);

    public void CopyStrided(DeviceBuffer x, DeviceBuffer y, in StridedCopy l, bool accumulate)
    {
        var xs = CpuBuffer.Of(x);
        var ys = CpuBuffer.Of(y);
        var layout = l;
        int rows = l.N0 * l.N1 * l.N2;
        Par.For(rows, l.Inner, (start, end) =>
        {
            var xa = xs.Span;
            var ya = ys.Span;
            for (int r = start; r < end; r++)
            {
                int i2 = r % layout.N2, i01 = r / layout.N2, i1 = i01 % layout.N1, i0 = i01 / layout.N1;
                var src = xa.Slice(layout.SrcOffset + i0 * layout.S0 + i1 * layout.S1 + i2 * layout.S2, layout.Inner);
                var dst = ya.Slice(layout.DstOffset + i0 * layout.D0 + i1 * layout.D1 + i2 * layout.D2, layout.Inner);
                if (accumulate) Simd.AddScaled(dst, src, dst, 1f);
                else src.CopyTo(dst);
            }
        });
    }

    public void AddBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, float alpha)
    {
        var xs = CpuBuffer.Of(x); var bs = CpuBuffer.Of(b); var ys = CpuBuffer.Of(y);
        if (inner == 1 && mid > 1)
        {
            // One scalar per (outer) row of mid elements: add a constant over each row.
            Par.For(outer, mid, (s, e) =>
            {
                for (int o = s; o < e; o++)
                    Simd.AddConstant(xs.Span.Slice(o * mid, mid), alpha * bs.Span[o], ys.Span.Slice(o * mid, mid));
            });
            return;
        }
        if (mid == 1)
        {
            int n = outer * inner;
            Par.For(n, 1, (s, e) => Simd.AddScaled(xs.Span[s..e], bs.Span[s..e], ys.Span[s..e], alpha));
            return;
        }
        Par.For(outer * mid, inner, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                int o = r / mid;
                Simd.AddScaled(xs.Span.Slice(r * inner, inner), bs.Span.Slice(o * inner, inner), ys.Span.Slice(r * inner, inner), alpha);
            }
        });
    }

    public void MulBroadcast(DeviceBuffer x, DeviceBuffer b, DeviceBuffer y, int outer, int mid, int inner, bool accumulate)
    {
        var xs = CpuBuffer.Of(x); var bs = CpuBuffer.Of(b); var ys = CpuBuffer.Of(y);
        if (mid == 1)
        {
            int n = outer * inner;
            Par.For(n, 1, (s, e) => Simd.Mul(xs.Span[s..e], bs.Span[s..e], ys.Span[s..e], accumulate));
            return;
        }
        if (inner == 1)
        {
            Par.For(outer, mid, (s, e) =>
            {
                for (int o = s; o < e; o++)
                    Simd.Scale(xs.Span.Slice(o * mid, mid), ys.Span.Slice(o * mid, mid), bs.Span[o], accumulate);
            });
            return;
        }
        Par.For(outer * mid, inner, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                int o = r / mid;
                Simd.Mul(xs.Span.Slice(r * inner, inner), bs.Span.Slice(o * inner, inner), ys.Span.Slice(r * inner, inner), accumulate);
            }
        });
    }

    public void SumMid(DeviceBuffer x, DeviceBuffer y, int outer, int mid, int inner, float alpha, bool accumulate) =>
        ReduceMid(x, null, y, outer, mid, inner, alpha, accumulate);

    public void MulSumMid(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, int outer, int mid, int inner, bool accumulate) =>
        ReduceMid(x, w, y, outer, mid, inner, 1f, accumulate);

    // y[o, i] (=|+=) alpha * sum_m x[o, m, i] (* w[o, m, i]). Parallel over outer when it is wide,
    // otherwise over blocks of the inner axis, so a bias gradient [rows, cols] -> [cols] is split
    // by columns and every worker still streams rows of contiguous memory.
    private void ReduceMid(DeviceBuffer x, DeviceBuffer? w, DeviceBuffer y, int outer, int mid, int inner, float alpha, bool accumulate)
    {
        var xs = CpuBuffer.Of(x); var ws = w is null ? null : CpuBuffer.Of(w); var ys = CpuBuffer.Of(y);
        if (inner == 1)
        {
            Par.For(outer, mid, (s, e) =>
            {
                for (int o = s; o < e; o++)
                {
                    var row = xs.Span.Slice(o * mid, mid);
                    float v = alpha * (ws is null ? Simd.Sum(row) : Simd.Dot(row, ws.Span.Slice(o * mid, mid)));
                    ys.Span[o] = accumulate ? ys.Span[o] + v : v;
                }
            });
            return;
        }
        const int Block = 64;
        int blocks = (inner + Block - 1) / Block;
        Par.For(outer * blocks, (long)mid * Block, (s, e) =>
        {
            Span<float> acc = stackalloc float[Block];
            for (int t = s; t < e; t++)
            {
                int o = t / blocks, i0 = (t % blocks) * Block, len = Math.Min(Block, inner - i0);
                var a = acc[..len];
                a.Clear();
                for (int m = 0; m < mid; m++)
                {
                    int at = (o * mid + m) * inner + i0;
                    if (ws is null) Simd.AddScaled(a, xs.Span.Slice(at, len), a, 1f);
                    else Simd.Mul(xs.Span.Slice(at, len), ws.Span.Slice(at, len), a, accumulate: true);
                }
                var dst = ys.Span.Slice(o * inner + i0, len);
                Simd.Scale(a, dst, alpha, accumulate);
            }
        });
    }

    public void Scale(DeviceBuffer x, DeviceBuffer y, int n, float alpha, bool accumulate)
    {
        var xs = CpuBuffer.Of(x); var ys = CpuBuffer.Of(y);
        Par.For(n, 1, (s, e) => Simd.Scale(xs.Span[s..e], ys.Span[s..e], alpha, accumulate));
    }

    public void GeluForward(DeviceBuffer x, DeviceBuffer y, int n)
    {
        var xs = CpuBuffer.Of(x); var ys = CpuBuffer.Of(y);
        Par.For(n, 16, (s, e) => Gelu.Forward(xs.Span[s..e], ys.Span[s..e]));
    }

    public void GeluBackward(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, int n)
    {
        var xs = CpuBuffer.Of(x); var dys = CpuBuffer.Of(dy); var dxs = CpuBuffer.Of(dx);
        Par.For(n, 16, (s, e) => Gelu.Backward(xs.Span[s..e], dys.Span[s..e], dxs.Span[s..e]));
    }

    public void DropoutForward(DeviceBuffer x, DeviceBuffer y, int n, float p, uint seed)
    {
        var xs = CpuBuffer.Of(x); var ys = CpuBuffer.Of(y);
        float keepScale = 1f / (1f - p);
        Par.For(n, 8, (s, e) =>
        {
            var xa = xs.Span; var ya = ys.Span;
            for (int i = s; i < e; i++) ya[i] = KernelMath.DropoutKeep(seed, (uint)i, p) ? xa[i] * keepScale : 0f;
        });
    }

    public void DropoutBackward(DeviceBuffer dy, DeviceBuffer dx, int n, float p, uint seed)
    {
        var dys = CpuBuffer.Of(dy); var dxs = CpuBuffer.Of(dx);
        float keepScale = 1f / (1f - p);
        Par.For(n, 8, (s, e) =>
        {
            var g = dys.Span; var d = dxs.Span;
            for (int i = s; i < e; i++) if (KernelMath.DropoutKeep(seed, (uint)i, p)) d[i] += g[i] * keepScale;
        });
    }
}
