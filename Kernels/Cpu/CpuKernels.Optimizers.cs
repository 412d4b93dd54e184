using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

// Optimizer kernels: one pass over (param, grad, state) per step. The clip factor is read from
// the squared global gradient norm that SumSquares accumulated, so clipping never needs the host.
internal sealed partial class CpuKernels
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
            total += Simd.Dot(SimdPath, c, c);
        }
        var r = CpuBuffer.Of(result).Span;
        r[0] = accumulate ? (float)(r[0] + total) : (float)total;
    }

    private readonly record struct AdamWJob(CpuBuffer Param, CpuBuffer Grad, CpuBuffer M, CpuBuffer V,
        float Clip, float Beta1, float Beta2, float Eps, float Decay, float StepSize, float InvSqrtBc2, SimdPath Path);

    public void AdamWStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n,
        in AdamWArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        float clip = gradNormSq is null ? 1f : KernelMath.ClipFactor(CpuBuffer.Of(gradNormSq).Span[0], maxNorm);
        float lr = args.Lr;
        float decay = 1f - args.Lr * args.WeightDecay;
        float bc1 = args.BiasCorrection1, bc2 = args.BiasCorrection2;
        float stepSize = lr / bc1, invSqrtBc2 = 1f / MathF.Sqrt(bc2);
        var job = new AdamWJob(CpuBuffer.Of(param), CpuBuffer.Of(grad), CpuBuffer.Of(m), CpuBuffer.Of(v),
            clip, args.Beta1, args.Beta2, args.Eps, decay, stepSize, invSqrtBc2, SimdPath);
        Par.For(n, 16, job, static (in AdamWJob j, int s, int e) =>
        {
            var p = j.Param.Span; var g = j.Grad.Span; var mm = j.M.Span; var vv = j.V.Span;
            float clip = j.Clip, b1 = j.Beta1, b2 = j.Beta2, eps = j.Eps, decay = j.Decay, stepSize = j.StepSize, invSqrtBc2 = j.InvSqrtBc2;
            int i = s;
            // The same operations in the same order as the scalar loop below (no fused multiply-add),
            // so every lane rounds exactly as the scalar tail does.
            if (j.Path == SimdPath.Vector512)
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

    private readonly record struct SgdJob(CpuBuffer Param, CpuBuffer Grad, CpuBuffer Momentum, float Clip, SgdArgs Args);

    public void SgdStep(DeviceBuffer param, DeviceBuffer grad, DeviceBuffer momentum, int n,
        in SgdArgs args, DeviceBuffer? gradNormSq, float maxNorm)
    {
        float clip = gradNormSq is null ? 1f : KernelMath.ClipFactor(CpuBuffer.Of(gradNormSq).Span[0], maxNorm);
        var job = new SgdJob(CpuBuffer.Of(param), CpuBuffer.Of(grad), CpuBuffer.Of(momentum), clip, args);
        Par.For(n, 8, job, static (in SgdJob j, int s, int e) =>
        {
            var p = j.Param.Span; var g = j.Grad.Span; var buf = j.Momentum.Span;
            var a = j.Args;
            float clip = j.Clip;
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
