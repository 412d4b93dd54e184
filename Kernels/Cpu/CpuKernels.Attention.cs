using System.Runtime.CompilerServices;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Kernels.Cpu;

// Fused scaled dot-product attention on the CPU. q, k, v, o, dO: [BH, N, D] (or any
// AttentionLayout: rows of D floats, InRow / OutRow apart); lse: [BH, N]. Every product below
// takes its row stride as a parameter, so the packed layout (q, k, v read straight out of the
// to_qkv output, o written with heads merged) costs nothing over the dense one.
//
// Twins: the GPU kernels are Kernels/Gpu/GpuKernels.AttentionSmall.cs (the path every ViT preset
// runs; the D identity below is derived there too) and the long-sequence fallback of
// GpuKernels.Attention.cs; the float64 reference is Tests/Reference/ReferenceKernels.Attention.cs.
// docs/cpu-kernels.md walks through this file.
//
// Threading: the BH (batch, head) pairs are split into contiguous ranges, a few per core
// (ChunksPerWorker) so that a faster core takes over more of them; a pair is never split, so no
// two threads write the same dq/dk/dv rows.
//
// Per pair, queries go in blocks of up to QB rows (all N rows at once for a ViT's N = 17..65). The
// scores of one block, S [rows, np], live in a per-thread scratch buffer (np = N rounded up to a
// whole vector; 65 x 72 floats = 18 KB on AVX2: L1/L2 resident) and are never written out for the
// whole batch. The products are MatMul/SmallGemm.cs, an unpacked register-blocked kernel: at these
// sizes packing and edge tiles cost more than the multiply (attention in a vit-micro step at
// N = 17 went from about 26 to 16 ms with this, `vit bench --profile`;
// docs/log/2026-performance-log.md, "The rest of the step"). The keys and values are transposed
// once per pair into Kt, Vt [d, np] (zero-padded columns), which makes every score product a
// plain row-major one. The transposes
// and the row-wise softmax steps are in AttentionRows.cs: at these sizes they took as long as
// the products until they ran whole vectors only.
//
// Forward, per query block:
//   S = scale Q Kᵀ = scale Q Kt           SmallGemm
//   lse_i = logsumexp_j S_ij,  P = exp(S - lse) ∘ M      M: dropout mask with values 0 or 1/(1-p)
//   O = P V                               SmallGemm
// Backward, P recomputed from lse (FlashAttention style), with Pd = exp(S - lse) the undropped P:
//   G = dO Vt                             SmallGemm; the gradient of P∘M is G, of Pd is G∘M
//   D_i = dO_i . O_i  (= sum_j Pd_ij (G∘M)_ij, since O = (Pd∘M) V)
//   dS = Pd ∘ (G∘M - D)                   softmax backward, row-wise SIMD
//   dV += (Pd∘M)ᵀ dO,  dQ += scale dS K,  dK += scale dSᵀ Q       three accumulating SmallGemms
internal sealed partial class CpuKernels
{
    // Query rows per block: bounds the per-thread score scratch to QB x N floats for long sequences.
    private const int QB = 128;

    // What one (batch, head) range of the forward or backward pass reads and writes. The gradient
    // buffers (DO, DQ, DK, DV) are null in the forward pass.
    private readonly record struct AttentionJob(
        CpuBuffer Q, CpuBuffer K, CpuBuffer V, CpuBuffer O, CpuBuffer Lse,
        CpuBuffer? DO, CpuBuffer? DQ, CpuBuffer? DK, CpuBuffer? DV,
        int N, int D, float Scale, float DropoutP, uint Seed, SimdPath Path, AttentionLayout Layout);

    // The kernels below address rows through raw pointers, so a layout that does not fit its
    // buffers must fail here rather than read or write past an array.
    private static AttentionLayout CheckedLayout(AttentionLayout? layout, int bh, int n, int d,
        DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
        DeviceBuffer? dO = null, DeviceBuffer? dq = null, DeviceBuffer? dk = null, DeviceBuffer? dv = null)
    {
        var l = layout ?? AttentionLayout.Dense(n, d);
        var (inExtent, outExtent) = l.Extent(bh, n, d);
        int inLength = Math.Min(Math.Min(q.Length, k.Length), v.Length), outLength = o.Length;
        if (dq is not null) inLength = Math.Min(inLength, Math.Min(Math.Min(dq.Length, dk!.Length), dv!.Length));
        if (dO is not null) outLength = Math.Min(outLength, dO.Length);
        if (inExtent > inLength || outExtent > outLength)
            throw new ArgumentException($"attention layout {l} over {bh} pairs of {n} x {d} needs {inExtent} floats in q, k, v (and their gradients) and {outExtent} in o (and dO); the shortest are {inLength} and {outLength}");
        return l;
    }

    public unsafe void AttentionForward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null)
    {
        if (bh <= 0 || n <= 0) return;
        var job = new AttentionJob(CpuBuffer.Of(q), CpuBuffer.Of(k), CpuBuffer.Of(v), CpuBuffer.Of(o), CpuBuffer.Of(lse),
            null, null, null, null, n, d, scale, dropoutP, seed, SimdPath, CheckedLayout(layout, bh, n, d, q, k, v, o));
        Par.For(bh, 4L * n * n * d, job, static (in AttentionJob j, int start, int end) =>
        {
            int n = j.N, d = j.D;
            float scale = j.Scale, dropoutP = j.DropoutP, keepScale = 1f / (1f - dropoutP);
            var path = j.Path;
            var (qs, ks, vs, os, ls) = (j.Q, j.K, j.V, j.O, j.Lse);
            var lay = j.Layout;
            int ldi = lay.InRow, ldo = lay.OutRow; // row strides of q, k, v and of o
            int qb = Math.Min(QB, n), np = AttentionRows.PaddedKeys(n, path);
            float* S = AttentionRowBuffers.Get(qb * np, np, d, out float* mask, out _, out float* Kt, out _);
            float* maxes = stackalloc float[qb], sums = stackalloc float[qb];
            fixed (float* q0 = qs.Array, k0 = ks.Array, v0 = vs.Array, o0 = os.Array, l0 = ls.Array)
            {
                for (int pair = start; pair < end; pair++)
                {
                    int pin = lay.InBase(pair, d), pout = lay.OutBase(pair, d);
                    float* Q = q0 + qs.Offset + pin, K = k0 + ks.Offset + pin, V = v0 + vs.Offset + pin, O = o0 + os.Offset + pout;
                    float* L = l0 + ls.Offset + (long)pair * n;
                    AttentionRows.Transpose(K, n, d, ldi, Kt, np); // Kt: [d, np], zero-padded keys
                    for (int i0 = 0; i0 < n; i0 += qb)
                    {
                        int rows = Math.Min(qb, n - i0);
                        // S [rows, np] = scale Q[i0.., :] Kᵀ
                        SmallGemm.Run(path, rows, np, d, Q + i0 * ldi, ldi, 1, Kt, np, S, np, scale, false);
                        // Phase by phase over the block's rows, not row by row: the rows of a phase are
                        // independent, so the core overlaps one row's exp latency with the next row's
                        // work. Each row gets the same operations, so the same bits; 1-4% faster
                        // (docs/log/2026-performance-log.md).
                        for (int r = 0; r < rows; r++) maxes[r] = AttentionRows.Max(S + r * np, n, np, path);
                        for (int r = 0; r < rows; r++) sums[r] = AttentionRows.ExpShifted(S + r * np, n, np, maxes[r], path, shiftIsRowMax: true); // padding -> 0
                        for (int r = 0; r < rows; r++)
                        {
                            float* row = S + r * np;
                            float sum = sums[r];
                            L[i0 + r] = maxes[r] + MathF.Log(sum);
                            if (dropoutP > 0f)
                            {
                                DropoutRow.Fill(j.Path, j.Seed, (uint)((pair * n + i0 + r) * n), n, dropoutP, keepScale / sum, mask);
                                var pr = new Span<float>(row, n);
                                Simd.Mul(j.Path, pr, new ReadOnlySpan<float>(mask, n), pr, accumulate: false);
                            }
                            else AttentionRows.Scale(row, np, 1f / sum, path);
                        }
                        // O[i0.., :] = P V
                        SmallGemm.Run(path, rows, d, n, S, np, 1, V, ldi, O + i0 * ldo, ldo, 1f, false);
                    }
                }
            }
        }, chunks: Par.Workers * ChunksPerWorker);
    }

    public unsafe void AttentionBackward(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse,
        DeviceBuffer dO, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv,
        int bh, int n, int d, float scale, float dropoutP, uint seed, AttentionLayout? layout = null)
    {
        if (bh <= 0 || n <= 0) return;
        var job = new AttentionJob(CpuBuffer.Of(q), CpuBuffer.Of(k), CpuBuffer.Of(v), CpuBuffer.Of(o), CpuBuffer.Of(lse),
            CpuBuffer.Of(dO), CpuBuffer.Of(dq), CpuBuffer.Of(dk), CpuBuffer.Of(dv), n, d, scale, dropoutP, seed, SimdPath,
            CheckedLayout(layout, bh, n, d, q, k, v, o, dO, dq, dk, dv));
        Par.For(bh, 10L * n * n * d, job, static (in AttentionJob j, int start, int end) =>
        {
            int n = j.N, d = j.D;
            float scale = j.Scale, dropoutP = j.DropoutP, keepScale = 1f / (1f - dropoutP);
            var path = j.Path;
            var (qs, ks, vs, os, ls) = (j.Q, j.K, j.V, j.O, j.Lse);
            var (gs, dqs, dks, dvs) = (j.DO!, j.DQ!, j.DK!, j.DV!);
            var lay = j.Layout;
            int ldi = lay.InRow, ldo = lay.OutRow; // row strides of q, k, v, dq, dk, dv and of o, dO
            int qb = Math.Min(QB, n), np = AttentionRows.PaddedKeys(n, path);
            float* S = AttentionRowBuffers.Get(qb * np, np, d, out float* mask, out float* G, out float* Kt, out float* Vt);
            fixed (float* q0 = qs.Array, k0 = ks.Array, v0 = vs.Array, o0 = os.Array, l0 = ls.Array,
                   g0 = gs.Array, dq0 = dqs.Array, dk0 = dks.Array, dv0 = dvs.Array)
            {
                for (int pair = start; pair < end; pair++)
                {
                    int pin = lay.InBase(pair, d), pout = lay.OutBase(pair, d);
                    float* Q = q0 + qs.Offset + pin, K = k0 + ks.Offset + pin, V = v0 + vs.Offset + pin, O = o0 + os.Offset + pout;
                    float* dOut = g0 + gs.Offset + pout, dQ = dq0 + dqs.Offset + pin, dK = dk0 + dks.Offset + pin, dV = dv0 + dvs.Offset + pin;
                    float* L = l0 + ls.Offset + (long)pair * n;
                    AttentionRows.Transpose(K, n, d, ldi, Kt, np); // Kt: [d, np]
                    AttentionRows.Transpose(V, n, d, ldi, Vt, np); // Vt: [d, np]
                    for (int i0 = 0; i0 < n; i0 += qb)
                    {
                        int rows = Math.Min(qb, n - i0);
                        float* Qb = Q + i0 * ldi, Gb = dOut + i0 * ldo;
                        SmallGemm.Run(path, rows, np, d, Qb, ldi, 1, Kt, np, S, np, scale, false); // S = scale Q Kᵀ
                        SmallGemm.Run(path, rows, np, d, Gb, ldo, 1, Vt, np, G, np, 1f, false);    // G = dO Vᵀ
                        // The exps first, for every row of the block (as in the forward pass).
                        for (int r = 0; r < rows; r++) AttentionRows.ExpShifted(S + r * np, n, np, L[i0 + r], path); // Pd = exp(S - lse), padding -> 0
                        for (int r = 0; r < rows; r++)
                        {
                            int i = i0 + r;
                            float* p = S + r * np, g = G + r * np;
                            float D = Simd.Dot(j.Path, new ReadOnlySpan<float>(dOut + i * ldo, d), new ReadOnlySpan<float>(O + i * ldo, d));
                            if (dropoutP > 0f)
                            {
                                DropoutRow.Fill(j.Path, j.Seed, (uint)((pair * n + i) * n), n, dropoutP, keepScale, mask);
                                AttentionRows.SoftmaxGradDropout(p, g, mask, n, D); // g = dS, p = Pd∘M
                            }
                            else AttentionRows.SoftmaxGrad(p, g, np, D, path); // g = dS
                        }
                        // The transposed operands (Pᵀ, dSᵀ) are the same scratch rows read with swapped strides.
                        SmallGemm.Run(path, n, d, rows, S, 1, np, Gb, ldo, dV, ldi, 1f, true);              // dV += Pᵀ dO
                        SmallGemm.Run(path, rows, d, n, G, np, 1, K, ldi, dQ + i0 * ldi, ldi, scale, true); // dQ += scale dS K
                        SmallGemm.Run(path, n, d, rows, G, 1, np, Qb, ldi, dK, ldi, scale, true);           // dK += scale dSᵀ Q
                    }
                }
            }
        }, chunks: Par.Workers * ChunksPerWorker);
    }

    /// <summary>
    /// Per-thread row buffers, pinned and grown, never shrunk: the score blocks S and G (rows x np each),
    /// one mask row, and the transposed keys and values Kt, Vt (d x np each).
    /// </summary>
    internal static unsafe class AttentionRowBuffers
    {
        [ThreadStatic] private static float[]? _storage;

        public static float* Get(int scores, int np, int d, out float* mask, out float* second, out float* kt, out float* vt)
        {
            int a = (scores + 15) & ~15, m = (np + 15) & ~15, t = (d * np + 15) & ~15;
            int need = 2 * a + m + 2 * t + 16;
            if (_storage is null || _storage.Length < need)
                _storage = GC.AllocateUninitializedArray<float>(need, pinned: true);
            // 64-byte aligned start, so every vector load of a buffer row is aligned.
            float* p = (float*)(((nint)Unsafe.AsPointer(ref _storage[0]) + 63) & ~(nint)63);
            second = p + a;
            mask = p + 2 * a;
            kt = mask + m;
            vt = kt + t;
            return p;
        }
    }
}
