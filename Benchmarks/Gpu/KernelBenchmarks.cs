using ILGPU;
using ILGPU.Runtime;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Benchmarks.Gpu;

/// <summary>
/// The GPU kernels against their baselines, timed with device events:
///   dotnet run -c Release --project Benchmarks -- --kernels-bench [--device cuda|ilgpu-cpu] [--quick] [--out FILE.md]
///   1. Device-to-device copy: the bandwidth ceiling (bytes read + bytes written).
///   2. Matmul: our kernel against cuBLAS SGEMM on the same buffers, at 4096³ and the ViT shapes,
///      with the relative difference of the two results as a sanity check.
///   3. Attention: the fused kernels (forward; backward) against the unfused path that a framework
///      without fusion runs: batched matmul (scale folded into alpha) + softmax + batched matmul,
///      and its backward (two matmuls for dP and dV, softmax backward, two matmuls for dQ and dK).
///   4. Memory-bound kernels: softmax, layernorm, GELU and AdamW in GB/s against the copy rate,
///      on buffers several times larger than the L2 cache, so DRAM is what is measured.
/// `--quick` shrinks every shape so the whole path runs on the ILGPU CPU simulator in seconds
/// (a smoke test of this code, not a measurement).
/// </summary>
internal sealed class KernelBenchmarks(GpuKernels k, bool quick, TextWriter log)
{
    private readonly Accelerator _acc = k.Accelerator;
    private readonly DeviceTimer _timer = new(k.Accelerator, quick ? 3 : 25);
    private readonly Random _rng = new(1234);
    private readonly List<string> _md = [];
    private double _copyGBs = double.NaN;

    public IReadOnlyList<string> Markdown => _md;

    public void RunAll()
    {
        Copy();
        MatMuls();
        Attention();
        MemoryBound();
    }

    // ---- 1. the bandwidth ceiling ------------------------------------------------------------

    private void Copy()
    {
        int n = quick ? 1 << 12 : 1 << 26; // 256 MB per buffer
        using var a = Random(n);
        using var b = k.Allocate(n);
        var (va, vb) = (View(a), View(b));
        double ms = _timer.MedianMs(() => va.CopyTo(vb));
        _copyGBs = 8.0 * n / ms / 1e6;
        Section("Device-to-device copy (the bandwidth ceiling)", "| floats | ms | GB/s (read + write) |", "|---|---|---|");
        Row($"| {n:N0} | {ms:F3} | {_copyGBs:F0} |");
    }

    // ---- 2. matmul against cuBLAS -----------------------------------------------------------

    private void MatMuls()
    {
        var shapes = quick
            ? new[] { ("ragged", MatMulShape.Single(67, 45, 33)), ("ragged, Aᵀ", MatMulShape.Single(33, 20, 70, transA: true)) }
            : new[]
            {
                ("4096³", MatMulShape.Single(4096, 4096, 4096)),
                ("qkv: [8320,192]×[192,576]", MatMulShape.Single(8320, 576, 192)),
                ("proj: [8320,384]×[384,192]", MatMulShape.Single(8320, 192, 384)),
                ("dW: [576,8320]×[8320,192], Aᵀ", MatMulShape.Single(576, 192, 8320, transA: true)),
                ("dX: [8320,576]×[576,192]ᵀ, Bᵀ", MatMulShape.Single(8320, 192, 576, transB: true)),
                ("batched [65,64]×[64,65] ×384, Bᵀ", MatMulShape.Batched(384, 65, 65, 64, transB: true)),
            };
        CuBlasGemm? blas = null;
        string blasNote = "";
        if (k.Name == "cuda")
        {
            try { blas = new CuBlasGemm(_acc); blasNote = $"cuBLAS {blas.Version}"; }
            catch (Exception e) { blasNote = $"cuBLAS unavailable: {e.GetType().Name}: {e.Message}"; }
        }
        else blasNote = "cuBLAS: not a CUDA device";
        Section($"Matmul, FP32 ({blasNote}); ours = GpuKernels.MatMul (the earlier kernel versions: --lab matmul)",
            "| shape | ours ms | ours GFLOP/s | cuBLAS ms | cuBLAS GFLOP/s | ours / cuBLAS | rel. diff |", "|---|---|---|---|---|---|---|");
        using (blas)
        {
            foreach (var (name, s) in shapes)
            {
                long aLen = (long)s.Batch * s.M * s.K, bLen = (long)s.Batch * s.K * s.N, cLen = (long)s.Batch * s.M * s.N;
                using var a = Random((int)aLen);
                using var b = Random((int)bLen);
                using var c = k.Allocate((int)cLen);
                double ours = _timer.MedianMs(() => k.MatMul(a, b, c, s, 1f, accumulate: false));
                k.MatMul(a, b, c, s, 1f, accumulate: false);
                string blasCols = "| – | – | – | – |";
                if (blas is not null && s.Batch == 1)
                {
                    using var cRef = k.Allocate((int)cLen);
                    double theirs = _timer.MedianMs(() => blas.Gemm(View(a), View(b), View(cRef), s));
                    blasCols = $"| {theirs:F3} | {s.Flops / theirs / 1e6:F0} | {theirs / ours * 100:F0}% | {RelDiff(c, cRef):E1} |";
                }
                Row($"| {name} | {ours:F3} | {s.Flops / ours / 1e6:F0} {blasCols}");
            }
        }
    }

    // ---- 3. fused against unfused attention -------------------------------------------------

    private void Attention()
    {
        var configs = quick
            ? new[] { (b: 2, h: 2, n: 9, d: 8) }
            : new[] { (b: 128, h: 3, n: 65, d: 64), (b: 128, h: 6, n: 65, d: 64), (b: 128, h: 12, n: 65, d: 32), (b: 128, h: 4, n: 65, d: 32) };
        Section("Attention: fused kernels against the unfused path (matmul + softmax + matmul)",
            "| B, H, N, d | fused fwd ms | unfused fwd ms | speed-up | fused bwd ms | unfused bwd ms | speed-up | rel. diff of o |",
            "|---|---|---|---|---|---|---|---|");
        foreach (var (b, h, n, d) in configs)
        {
            int bh = b * h, len = bh * n * d, scores = bh * n * n;
            float scale = 1f / MathF.Sqrt(d);
            using var q = Random(len); using var kk = Random(len); using var v = Random(len); using var dO = Random(len);
            using var o = k.Allocate(len); using var lse = k.Allocate(bh * n);
            using var dq = k.Allocate(len); using var dk = k.Allocate(len); using var dv = k.Allocate(len);
            using var s = k.Allocate(scores); using var p = k.Allocate(scores);
            using var dp = k.Allocate(scores); using var ds = k.Allocate(scores);
            using var o2 = k.Allocate(len);
            var qkT = MatMulShape.Batched(bh, n, n, d, transB: true);  // S = scale Q Kᵀ: [BH, N, N]
            var pv = MatMulShape.Batched(bh, n, d, n);                 // O = P V: [BH, N, d]
            var dOvT = MatMulShape.Batched(bh, n, n, d, transB: true); // dP = dO Vᵀ: [BH, N, N]
            var pTdO = MatMulShape.Batched(bh, n, d, n, transA: true); // dV += Pᵀ dO: [BH, N, d]
            var dsK = MatMulShape.Batched(bh, n, d, n);                // dQ += scale dS K: [BH, N, d]
            var dsTq = MatMulShape.Batched(bh, n, d, n, transA: true); // dK += scale dSᵀ Q: [BH, N, d]

            void FusedForward() => k.AttentionForward(q, kk, v, o, lse, bh, n, d, scale, 0f, 0);
            void FusedBackward() => k.AttentionBackward(q, kk, v, o, lse, dO, dq, dk, dv, bh, n, d, scale, 0f, 0);
            void UnfusedForward()
            {
                k.MatMul(q, kk, s, qkT, scale, accumulate: false);
                k.SoftmaxForward(s, p, bh * n, n);
                k.MatMul(p, v, o2, pv, 1f, accumulate: false);
            }
            void UnfusedBackward()
            {
                k.MatMul(dO, v, dp, dOvT, 1f, accumulate: false);
                k.MatMul(p, dO, dv, pTdO, 1f, accumulate: true);
                k.Fill(ds, 0f, scores); // softmax backward accumulates (+=) into dS
                k.SoftmaxBackward(p, dp, ds, bh * n, n);
                k.MatMul(ds, kk, dq, dsK, scale, accumulate: true);
                k.MatMul(ds, q, dk, dsTq, scale, accumulate: true);
            }
            double ff = _timer.MedianMs(FusedForward), uf = _timer.MedianMs(UnfusedForward);
            double fb = _timer.MedianMs(FusedBackward), ub = _timer.MedianMs(UnfusedBackward);
            FusedForward(); UnfusedForward();
            Row($"| {b}, {h}, {n}, {d} | {ff:F3} | {uf:F3} | {uf / ff:F2}× | {fb:F3} | {ub:F3} | {ub / fb:F2}× | {RelDiff(o, o2):E1} |");
        }
    }

    // ---- 4. memory-bound kernels in GB/s ----------------------------------------------------

    private void MemoryBound()
    {
        Section($"Memory-bound kernels (bytes = each input read once + each output written once; copy = {_copyGBs:F0} GB/s)",
            "| kernel | shape | ms | GB/s | of copy |", "|---|---|---|---|---|");
        int rows = quick ? 37 : 1 << 20, n = quick ? 4099 : 1 << 26;

        // Softmax over attention-score rows of 65.
        {
            const int cols = 65;
            using var x = Random(rows * cols); using var y = k.Allocate(rows * cols); using var dx = Random(rows * cols);
            Report("softmax forward", $"[{rows:N0}, {cols}]", 8.0 * rows * cols, () => k.SoftmaxForward(x, y, rows, cols));
            Report("softmax backward (+=)", $"[{rows:N0}, {cols}]", 16.0 * rows * cols, () => k.SoftmaxBackward(y, x, dx, rows, cols));
        }
        // Layernorm over rows of 192 (vit-tiny width).
        {
            const int cols = 192;
            int r = n / cols;
            using var x = Random(r * cols); using var y = k.Allocate(r * cols); using var dx = Random(r * cols);
            using var g = Random(cols); using var bta = Random(cols); using var dg = k.Allocate(cols); using var db = k.Allocate(cols);
            using var mean = k.Allocate(r); using var rstd = k.Allocate(r);
            Report("layernorm forward", $"[{r:N0}, {cols}]", 8.0 * r * cols + 8.0 * r, () => k.LayerNormForward(x, g, bta, y, mean, rstd, r, cols, 1e-5f));
            Report("layernorm backward (+=)", $"[{r:N0}, {cols}]", 16.0 * r * cols + 8.0 * r, () => k.LayerNormBackward(x, g, mean, rstd, y, dx, dg, db, r, cols));
        }
        // GELU, elementwise.
        {
            using var x = Random(n); using var y = k.Allocate(n); using var dx = Random(n);
            Report("GELU forward", $"{n:N0}", 8.0 * n, () => k.GeluForward(x, y, n));
            Report("GELU backward (+=)", $"{n:N0}", 16.0 * n, () => k.GeluBackward(x, y, dx, n));
        }
        // AdamW: reads param, grad, m, v; writes param, m, v.
        {
            int p = n / 4;
            using var w = Random(p); using var gr = Random(p); using var m = Random(p); using var v = k.Allocate(p);
            k.Fill(v, 0.5f, p);
            var args = new AdamWArgs(1e-6f, 0.9f, 0.999f, 1e-8f, 0.05f, 10);
            Report("AdamW step", $"{p:N0}", 28.0 * p, () => k.AdamWStep(w, gr, m, v, p, args, null, 0f));
        }
    }

    private void Report(string name, string shape, double bytes, Action op)
    {
        double ms = _timer.MedianMs(op);
        double gbs = bytes / ms / 1e6;
        Row($"| {name} | {shape} | {ms:F3} | {gbs:F0} | {gbs / _copyGBs * 100:F0}% |");
    }

    // ---- helpers ----------------------------------------------------------------------------

    private DeviceBuffer Random(int n)
    {
        var host = new float[n];
        for (int i = 0; i < n; i++) host[i] = (float)(_rng.NextDouble() * 2 - 1);
        var buffer = k.Allocate(n);
        k.Upload(host, buffer);
        return buffer;
    }

    private static ArrayView<float> View(DeviceBuffer b) => ((GpuBuffer)b).View;

    /// <summary>‖x − y‖ / ‖y‖ over the whole buffers, in double.</summary>
    private double RelDiff(DeviceBuffer x, DeviceBuffer y)
    {
        var hx = new float[x.Length]; var hy = new float[y.Length];
        k.Download(x, hx); k.Download(y, hy);
        double num = 0, den = 0;
        for (int i = 0; i < hx.Length; i++) { double e = hx[i] - hy[i]; num += e * e; den += (double)hy[i] * hy[i]; }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    private void Section(string title, string header, string rule)
    {
        _md.Add(""); _md.Add($"### {title}"); _md.Add(""); _md.Add(header); _md.Add(rule);
        log.WriteLine(); log.WriteLine(title); log.WriteLine(header);
    }

    private void Row(string row)
    {
        _md.Add(row);
        log.WriteLine(row);
        log.Flush();
    }
}
