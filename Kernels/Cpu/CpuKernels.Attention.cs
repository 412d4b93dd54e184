using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Kernels.Cpu;

// Fused scaled dot-product attention on the CPU. q, k, v, o, dO: [BH, N, D]; lse: [BH, N].
//
// Threading: the BH (batch, head) pairs are split into one contiguous range per core; a pair is
// never split, so no two threads write the same dq/dk/dv rows.
//
// Per pair, queries go in blocks of up to QB rows (all N rows at once for a ViT's N = 65). The
// scores of one block, S [rows, N], live in a per-thread scratch buffer (65 x 65 floats = 17 KB:
// L1/L2 resident) and are never written out for the whole batch. The products are the blocked
// SIMD matmul of MatMul/Gemm.cs run single-threaded on the pair, so they run at near-matmul speed
// instead of as N^2 short dot products.
//
// Forward, per query block:
//   S = scale Q Kᵀ                        Gemm (B transposed)
//   lse_i = logsumexp_j S_ij,  P = exp(S - lse) ∘ M      M: dropout mask with values 0 or 1/(1-p)
//   O = P V                               Gemm
// Backward, P recomputed from lse (FlashAttention style), with Pd = exp(S - lse) the undropped P:
//   G = dO Vᵀ                             Gemm (B transposed); the gradient of P∘M is G, of Pd is G∘M
//   D_i = dO_i . O_i  (= sum_j Pd_ij (G∘M)_ij, since O = (Pd∘M) V)
//   dS = Pd ∘ (G∘M - D)                   softmax backward, row-wise SIMD
//   dV += (Pd∘M)ᵀ dO,  dQ += scale dS K,  dK += scale dSᵀ Q       three accumulating Gemms
public sealed partial class CpuKernels
{
    // Query rows per block: bounds the per-thread score scratch to QB x N floats for long sequences.
    private const int QB = 128;

    // What one (batch, head) range of the forward or backward pass reads and writes. The gradient
    // buffers (DO, DQ, DK, DV) are null in the forward pass.
    private readonly record struct AttentionJob(
        CpuBuffer Q, CpuBuffer K, CpuBuffer V, CpuBuffer O, CpuBuffer Lse,
        CpuBuffer? DO, CpuBuffer? DQ, CpuBuffer? DK, CpuBuffer? DV,
        int N, int D, float Scale, float DropoutP, uint Seed, SimdPath Path);

    public unsafe void AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        int bh, int n, int d, float scale, float dropoutP, uint seed)
    {
        if (bh <= 0 || n <= 0) return;
        var job = new AttentionJob(CpuBuffer.Of(q), CpuBuffer.Of(k), CpuBuffer.Of(v), CpuBuffer.Of(o), CpuBuffer.Of(lse),
            null, null, null, null, n, d, scale, dropoutP, seed, SimdPath);
        Par.For(bh, 4L * n * n * d, job, static (in AttentionJob j, int start, int end) =>
        {
            int n = j.N, d = j.D;
            float scale = j.Scale, dropoutP = j.DropoutP, keepScale = 1f / (1f - dropoutP);
            var path = j.Path;
            var (qs, ks, vs, os, ls) = (j.Q, j.K, j.V, j.O, j.Lse);
            int qb = Math.Min(QB, n);
            float* S = AttentionScratch.Get(qb * n, n, out float* mask, out _);
            fixed (float* q0 = qs.Array, k0 = ks.Array, v0 = vs.Array, o0 = os.Array, l0 = ls.Array)
            {
                for (int h = start; h < end; h++)
                {
                    long pair = (long)h * n * d;
                    float* Q = q0 + qs.Offset + pair, K = k0 + ks.Offset + pair, V = v0 + vs.Offset + pair, O = o0 + os.Offset + pair;
                    float* L = l0 + ls.Offset + (long)h * n;
                    for (int i0 = 0; i0 < n; i0 += qb)
                    {
                        int rows = Math.Min(qb, n - i0);
                        // S [rows, n] = scale Q[i0.., :] K^T
                        Gemm.Run(path, rows, n, d, Q + i0 * d, d, false, K, d, true, S, n, scale, false);
                        for (int r = 0; r < rows; r++)
                        {
                            var row = new Span<float>(S + r * n, n);
                            float max = Simd.Max(row);
                            float sum = Simd.ExpShifted(row, max, row);
                            L[i0 + r] = max + MathF.Log(sum);
                            if (dropoutP > 0f)
                            {
                                DropoutRow.Fill(j.Seed, (uint)((h * n + i0 + r) * n), n, dropoutP, keepScale / sum, mask);
                                Simd.Mul(row, new ReadOnlySpan<float>(mask, n), row, accumulate: false);
                            }
                            else Simd.Scale(row, row, 1f / sum, accumulate: false);
                        }
                        // O[i0.., :] = P V
                        Gemm.Run(path, rows, d, n, S, n, false, V, d, false, O + i0 * d, d, 1f, false);
                    }
                }
            }
        });
    }

    public unsafe void AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv,
        int bh, int n, int d, float scale, float dropoutP, uint seed)
    {
        if (bh <= 0 || n <= 0) return;
        var job = new AttentionJob(CpuBuffer.Of(q), CpuBuffer.Of(k), CpuBuffer.Of(v), CpuBuffer.Of(o), CpuBuffer.Of(lse),
            CpuBuffer.Of(dO), CpuBuffer.Of(dq), CpuBuffer.Of(dk), CpuBuffer.Of(dv), n, d, scale, dropoutP, seed, SimdPath);
        Par.For(bh, 10L * n * n * d, job, static (in AttentionJob j, int start, int end) =>
        {
            int n = j.N, d = j.D;
            float scale = j.Scale, dropoutP = j.DropoutP, keepScale = 1f / (1f - dropoutP);
            var path = j.Path;
            var (qs, ks, vs, os, ls) = (j.Q, j.K, j.V, j.O, j.Lse);
            var (gs, dqs, dks, dvs) = (j.DO!, j.DQ!, j.DK!, j.DV!);
            int qb = Math.Min(QB, n);
            float* S = AttentionScratch.Get(qb * n, n, out float* mask, out float* G);
            fixed (float* q0 = qs.Array, k0 = ks.Array, v0 = vs.Array, o0 = os.Array, l0 = ls.Array,
                   g0 = gs.Array, dq0 = dqs.Array, dk0 = dks.Array, dv0 = dvs.Array)
            {
                for (int h = start; h < end; h++)
                {
                    long pair = (long)h * n * d;
                    float* Q = q0 + qs.Offset + pair, K = k0 + ks.Offset + pair, V = v0 + vs.Offset + pair, O = o0 + os.Offset + pair;
                    float* dOut = g0 + gs.Offset + pair, dQ = dq0 + dqs.Offset + pair, dK = dk0 + dks.Offset + pair, dV = dv0 + dvs.Offset + pair;
                    float* L = l0 + ls.Offset + (long)h * n;
                    for (int i0 = 0; i0 < n; i0 += qb)
                    {
                        int rows = Math.Min(qb, n - i0);
                        float* Qb = Q + i0 * d, Gb = dOut + i0 * d;
                        Gemm.Run(path, rows, n, d, Qb, d, false, K, d, true, S, n, scale, false); // S = scale Q Kᵀ
                        Gemm.Run(path, rows, n, d, Gb, d, false, V, d, true, G, n, 1f, false);    // G = dO Vᵀ
                        for (int r = 0; r < rows; r++)
                        {
                            int i = i0 + r;
                            var p = new Span<float>(S + r * n, n);
                            var g = new Span<float>(G + r * n, n);
                            float D = Simd.Dot(new ReadOnlySpan<float>(dOut + i * d, d), new ReadOnlySpan<float>(O + i * d, d));
                            Simd.ExpShifted(p, L[i], p); // Pd = exp(S - lse)
                            if (dropoutP > 0f)
                            {
                                DropoutRow.Fill(j.Seed, (uint)((h * n + i) * n), n, dropoutP, keepScale, mask);
                                SoftmaxGradDropout(p, g, new ReadOnlySpan<float>(mask, n), D); // g = dS, p = Pd∘M
                            }
                            else SoftmaxGrad(p, g, D); // g = dS
                        }
                        Gemm.Run(path, n, d, rows, S, n, true, Gb, d, false, dV, d, 1f, true);     // dV += Pᵀ dO
                        Gemm.Run(path, rows, d, n, G, n, false, K, d, false, dQ + i0 * d, d, scale, true); // dQ += scale dS K
                        Gemm.Run(path, n, d, rows, G, n, true, Qb, d, false, dK, d, scale, true);  // dK += scale dSᵀ Q
                    }
                }
            }
        });
    }

    // g_j = p_j (g_j - D): softmax backward for one row, no dropout.
    private static void SoftmaxGrad(Span<float> p, Span<float> g, float D)
    {
        int n = p.Length, j = 0;
        ref float pr = ref p[0]; ref float gr = ref g[0];
        if (Vector512.IsHardwareAccelerated)
        {
            var dv = Vector512.Create(D);
            for (; j <= n - 16; j += 16)
                Vector512.StoreUnsafe(Vector512.LoadUnsafe(ref pr, (nuint)j) * (Vector512.LoadUnsafe(ref gr, (nuint)j) - dv), ref gr, (nuint)j);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var dv = Vector256.Create(D);
            for (; j <= n - 8; j += 8)
                Vector256.StoreUnsafe(Vector256.LoadUnsafe(ref pr, (nuint)j) * (Vector256.LoadUnsafe(ref gr, (nuint)j) - dv), ref gr, (nuint)j);
        }
        for (; j < n; j++) Unsafe.Add(ref gr, j) = Unsafe.Add(ref pr, j) * (Unsafe.Add(ref gr, j) - D);
    }

    // With dropout mask m (0 or 1/(1-p)): g_j = p_j (m_j g_j - D), then p_j = p_j m_j (the weights dV needs).
    private static void SoftmaxGradDropout(Span<float> p, Span<float> g, ReadOnlySpan<float> m, float D)
    {
        int n = p.Length, j = 0;
        ref float pr = ref p[0]; ref float gr = ref g[0]; ref float mr = ref Unsafe.AsRef(in m[0]);
        if (Vector512.IsHardwareAccelerated)
        {
            var dv = Vector512.Create(D);
            for (; j <= n - 16; j += 16)
            {
                var pv = Vector512.LoadUnsafe(ref pr, (nuint)j); var mv = Vector512.LoadUnsafe(ref mr, (nuint)j);
                Vector512.StoreUnsafe(pv * (mv * Vector512.LoadUnsafe(ref gr, (nuint)j) - dv), ref gr, (nuint)j);
                Vector512.StoreUnsafe(pv * mv, ref pr, (nuint)j);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var dv = Vector256.Create(D);
            for (; j <= n - 8; j += 8)
            {
                var pv = Vector256.LoadUnsafe(ref pr, (nuint)j); var mv = Vector256.LoadUnsafe(ref mr, (nuint)j);
                Vector256.StoreUnsafe(pv * (mv * Vector256.LoadUnsafe(ref gr, (nuint)j) - dv), ref gr, (nuint)j);
                Vector256.StoreUnsafe(pv * mv, ref pr, (nuint)j);
            }
        }
        for (; j < n; j++)
        {
            float pv = Unsafe.Add(ref pr, j), mv = Unsafe.Add(ref mr, j);
            Unsafe.Add(ref gr, j) = pv * (mv * Unsafe.Add(ref gr, j) - D);
            Unsafe.Add(ref pr, j) = pv * mv;
        }
    }

    /// <summary>Per-thread score buffers (S and G: QB x N each, plus one mask row), pinned and grown, never shrunk.</summary>
    private static unsafe class AttentionScratch
    {
        [ThreadStatic] private static float[]? _storage;

        public static float* Get(int scores, int n, out float* mask, out float* second)
        {
            int a = (scores + 15) & ~15, m = (n + 15) & ~15;
            int need = 2 * a + m;
            if (_storage is null || _storage.Length < need)
                _storage = GC.AllocateUninitializedArray<float>(need, pinned: true);
            float* p = (float*)Unsafe.AsPointer(ref _storage[0]);
            second = p + a;
            mask = p + 2 * a;
            return p;
        }
    }
}
