namespace ViTScratch.Kernels.Cpu;

// Fused scaled dot-product attention on the CPU. One (batch, head) pair at a time per core; the
// scores of one query row live in a small stack buffer and the N x N matrix is never stored.
// Forward:  s_j = scale q.k_j, P_j = exp(s_j - lse), lse = logsumexp(s), o = sum_j drop(P_j) v_j.
// Backward (P recomputed from lse): D = dO.o, dP_j = drop(dO.v_j), dS_j = P_j (dP_j - D),
//   dq += scale sum_j dS_j k_j, dk_j += scale dS_j q, dv_j += drop(P_j) dO.
public sealed partial class CpuKernels
{
    public void AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        int bh, int n, int d, float scale, float dropoutP, uint seed)
    {
        var qs = CpuBuffer.Of(q); var ks = CpuBuffer.Of(k); var vs = CpuBuffer.Of(v); var os = CpuBuffer.Of(o); var ls = CpuBuffer.Of(lse);
        float keepScale = 1f / (1f - dropoutP);
        Par.For(bh, 4L * n * n * d, (s, e) =>
        {
            Span<float> p = n <= 4096 ? stackalloc float[n] : new float[n];
            for (int h = s; h < e; h++)
            {
                int baseQ = h * n * d;
                var K = ks.Span.Slice(baseQ, n * d); var V = vs.Span.Slice(baseQ, n * d);
                for (int i = 0; i < n; i++)
                {
                    var qi = qs.Span.Slice(baseQ + i * d, d);
                    for (int j = 0; j < n; j++) p[j] = scale * Simd.Dot(qi, K.Slice(j * d, d));
                    float max = Simd.Max(p);
                    float sum = Simd.ExpShifted(p, max, p);
                    ls.Span[h * n + i] = max + MathF.Log(sum);
                    var oi = os.Span.Slice(baseQ + i * d, d);
                    oi.Clear();
                    float inv = 1f / sum;
                    for (int j = 0; j < n; j++)
                    {
                        float w = p[j] * inv;
                        if (dropoutP > 0f)
                            w = KernelMath.DropoutKeep(seed, (uint)((h * n + i) * n + j), dropoutP) ? w * keepScale : 0f;
                        Simd.AddScaled(oi, V.Slice(j * d, d), oi, w);
                    }
                }
            }
        });
    }

    public void AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv,
        int bh, int n, int d, float scale, float dropoutP, uint seed)
    {
        var qs = CpuBuffer.Of(q); var ks = CpuBuffer.Of(k); var vs = CpuBuffer.Of(v); var os = CpuBuffer.Of(o); var ls = CpuBuffer.Of(lse);
        var dos = CpuBuffer.Of(dO); var dqs = CpuBuffer.Of(dq); var dks = CpuBuffer.Of(dk); var dvs = CpuBuffer.Of(dv);
        float keepScale = 1f / (1f - dropoutP);
        Par.For(bh, 8L * n * n * d, (s, e) =>
        {
            for (int h = s; h < e; h++)
            {
                int b0 = h * n * d;
                var Q = qs.Span.Slice(b0, n * d); var K = ks.Span.Slice(b0, n * d); var V = vs.Span.Slice(b0, n * d);
                var O = os.Span.Slice(b0, n * d); var G = dos.Span.Slice(b0, n * d);
                var dQ = dqs.Span.Slice(b0, n * d); var dK = dks.Span.Slice(b0, n * d); var dV = dvs.Span.Slice(b0, n * d);
                for (int i = 0; i < n; i++)
                {
                    var qi = Q.Slice(i * d, d); var gi = G.Slice(i * d, d); var dqi = dQ.Slice(i * d, d);
                    float lsei = ls.Span[h * n + i];
                    float D = Simd.Dot(gi, O.Slice(i * d, d));
                    for (int j = 0; j < n; j++)
                    {
                        float pij = MathF.Exp(scale * Simd.Dot(qi, K.Slice(j * d, d)) - lsei);
                        float keep = dropoutP > 0f
                            ? (KernelMath.DropoutKeep(seed, (uint)((h * n + i) * n + j), dropoutP) ? keepScale : 0f)
                            : 1f;
                        float dp = keep * Simd.Dot(gi, V.Slice(j * d, d));
                        float ds = pij * (dp - D) * scale;
                        Simd.AddScaled(dV.Slice(j * d, d), gi, dV.Slice(j * d, d), pij * keep);
                        Simd.AddScaled(dqi, K.Slice(j * d, d), dqi, ds);
                        Simd.AddScaled(dK.Slice(j * d, d), qi, dK.Slice(j * d, d), ds);
                    }
                }
            }
        });
    }
}
