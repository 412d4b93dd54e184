using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

// Optimizer kernels: one pass over (param, grad, state) per step. The clip factor is read from
// the squared global gradient norm that SumSquares accumulated, so clipping never needs the host.
public sealed partial class CpuKernels
{
    public void SumSquares(DeviceBuffer x, int n, DeviceBuffer result, bool accumulate)
    {
        var xs = CpuBuffer.Of(x).Span[..n];
        // Summed in double across chunks: a global norm over millions of values loses bits in float.
        double total = 0;
        const int Chunk = 4096;
        for (int i = 0; i < n; i += Chunk)
        {
            var c = xs.Slice(i, Math.Min(Chunk, n - i));
            total += Simd.Dot(c, c);
        }
        var r = CpuBuffer.Of(result).Span;
        r[0] = accumulate ? (float)(r[0] + total) : (float)total;
    }

    public void AdamWStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n,
        in AdamWArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        var ps = CpuBuffer.Of(param); var gs = CpuBuffer.Of(grad); var msb = CpuBuffer.Of(m); var vs = CpuBuffer.Of(v);
        float clip = gradNormSq is null ? 1f : KernelMath.ClipFactor(CpuBuffer.Of(gradNormSq).Span[0], maxNorm);
        float lr = args.Lr, b1 = args.Beta1, b2 = args.Beta2, eps = args.Eps;
        float decay = 1f - args.Lr * args.WeightDecay;
        float bc1 = args.BiasCorrection1, bc2 = args.BiasCorrection2;
        float stepSize = lr / bc1, invSqrtBc2 = 1f / MathF.Sqrt(bc2);
        Par.For(n, 16, (s, e) =>
        {
            var p = ps.Span; var g = gs.Span; var mm = msb.Span; var vv = vs.Span;
            int i = s;
            // The same operations in the same order as the scalar loop below (no fused multiply-add),
            // so every lane rounds exactly as the scalar tail does.
            if (Vector512.IsHardwareAccelerated)
                for (; i <= e - 16; i += 16)
                {
                    var gi = Vector512.Create(g.Slice(i, 16)) * clip;
                    var mi = b1 * Vector512.Create(mm.Slice(i, 16)) + (1f - b1) * gi;
                    var vi = b2 * Vector512.Create(vv.Slice(i, 16)) + (1f - b2) * gi * gi;
                    mi.CopyTo(mm.Slice(i, 16));
                    vi.CopyTo(vv.Slice(i, 16));
                    var pi = Vector512.Create(p.Slice(i, 16)) * decay - stepSize * mi / (Vector512.Sqrt(vi) * invSqrtBc2 + Vector512.Create(eps));
                    pi.CopyTo(p.Slice(i, 16));
                }
            else if (Vector256.IsHardwareAccelerated)
                for (; i <= e - 8; i += 8)
                {
                    var gi = Vector256.Create(g.Slice(i, 8)) * clip;
                    var mi = b1 * Vector256.Create(mm.Slice(i, 8)) + (1f - b1) * gi;
                    var vi = b2 * Vector256.Create(vv.Slice(i, 8)) + (1f - b2) * gi * gi;
                    mi.CopyTo(mm.Slice(i, 8));
                    vi.CopyTo(vv.Slice(i, 8));
                    var pi = Vector256.Create(p.Slice(i, 8)) * decay - stepSize * mi / (Vector256.Sqrt(vi) * invSqrtBc2 + Vector256.Create(eps));
                    pi.CopyTo(p.Slice(i, 8));
                }
            for (; i < e; i++)
            {
                float gi = g[i] * clip;
                float mi = b1 * mm[i] + (1f - b1) * gi;
                float vi = b2 * vv[i] + (1f - b2) * gi * gi;
                mm[i] = mi;
                vv[i] = vi;
                // PyTorch's AdamW: decay first, then p -= lr * mhat / (sqrt(vhat) + eps).
                p[i] = p[i] * decay - stepSize * mi / (MathF.Sqrt(vi) * invSqrtBc2 + eps);
            }
        });
    }

    public void SgdStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer momentum, int n,
        in SgdArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        var ps = CpuBuffer.Of(param); var gs = CpuBuffer.Of(grad); var bs = CpuBuffer.Of(momentum);
        float clip = gradNormSq is null ? 1f : KernelMath.ClipFactor(CpuBuffer.Of(gradNormSq).Span[0], maxNorm);
        var a = args;
        Par.For(n, 8, (s, e) =>
        {
            var p = ps.Span; var g = gs.Span; var buf = bs.Span;
            for (int i = s; i < e; i++)
            {
                float gi = g[i] * clip + a.WeightDecay * p[i];
                if (a.Momentum != 0f)
                {
                    float bi = a.FirstStep ? gi : a.Momentum * buf[i] + gi;
                    buf[i] = bi;
                    gi = a.Nesterov ? gi + a.Momentum * bi : bi;
                }
                p[i] -= a.Lr * gi;
            }
        });
    }
}
