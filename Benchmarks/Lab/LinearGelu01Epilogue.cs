using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks.Lab;

/// <summary>
/// CPU version 01 of the MLP's first Linear with its GELU, forward: GELU applied in the matmul's
/// epilogue. Gemm.Run with one step added: after the last K block of each MC x NC block of
/// h = x Wᵀ + b (the bias already goes on there), g = GELU(h) is written from that block while it
/// is still in L2, so the separate GeluForward pass no longer reads h back from memory.
///
/// Not in the mainline: against the mainline (the matmul with its bias, then GeluForward) at
/// vit-tiny's shape (8320 x 192 x 384, batch 128), interleaved, it was not faster. 401 rounds
/// under load (niced, load average 237-383 on the 2-vCPU Zen 4 host, AVX-512 path): mainline /
/// this, per-round median 0.985, quartiles 0.778-1.298; fastest call 18.37 against 20.91 ms (0.878)
/// (docs/performance.md, "Fusions"). The likely reasons, not measured apart: GELU's forward is
/// bound by its erf polynomial rather than by the read of h (the roofline puts it at 37-39% of
/// the copy rate), so the epilogue saves little, and the 128 x 384 block of GELU output it writes
/// (196 KB) competes for L2 with the packed operands the next block reuses.
/// Run: dotnet run -c Release --project Benchmarks -- --interleaved-fusions kernels
/// </summary>
internal static unsafe class LinearGelu01Epilogue
{
    private readonly record struct Job(CpuBuffer X, CpuBuffer W, CpuBuffer Bias, CpuBuffer H, CpuBuffer G, int Rows, int N, int K, int Pieces, int MR, SimdPath Path);

    /// <summary>h = x Wᵀ + bias and g = GELU(h); x [rows, k], W [n, k], bias [n], h and g [rows, n].</summary>
    public static void Run(CpuKernels kern, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer h, DeviceBuffer g, int rows, int n, int k)
    {
        // Row slabs as CpuKernels.MatMul cuts a tall product: ChunksPerWorker pieces per worker,
        // at least 512 rows thick, on micro-tile boundaries.
        var path = kern.SimdPath;
        int pieces = Math.Max(Par.Workers, Math.Min(Par.Workers * 4, rows / 512));
        var job = new Job(CpuBuffer.Of(x), CpuBuffer.Of(w), CpuBuffer.Of(bias), CpuBuffer.Of(h), CpuBuffer.Of(g), rows, n, k, pieces, Gemm.Tile(path).MR, path);
        Par.For(pieces, 2L * rows / pieces * n * k, job, static (in Job j, int p0, int p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int i0 = Cut(j.Rows, p, j.Pieces, j.MR), i1 = Cut(j.Rows, p + 1, j.Pieces, j.MR);
                if (i1 <= i0) continue;
                fixed (float* px = j.X.Array, pw = j.W.Array, pb = j.Bias.Array, ph = j.H.Array, pg = j.G.Array)
                    Slab(j.Path, i1 - i0, j.N, j.K, px + j.X.Offset + (long)i0 * j.K, pw + j.W.Offset,
                        ph + j.H.Offset + (long)i0 * j.N, pg + j.G.Offset + (long)i0 * j.N, pb + j.Bias.Offset);
            }
        }, chunks: pieces);
    }

    private static int Cut(int length, int piece, int parts, int grain)
    {
        if (piece >= parts) return length;
        long v = (long)length * piece / parts;
        return (int)Math.Min(length, (v + grain / 2) / grain * grain);
    }

    // Gemm.Run for C = A Bᵀ + bias (A row-major [m, k], B stored [n, k]), with the GELU epilogue.
    private static void Slab(SimdPath path, int m, int n, int k, float* a, float* b, float* c, float* gelu, float* bias)
    {
        var bl = path == SimdPath.Vector512 ? Gemm.Avx512 : Gemm.Avx2;
        var s = Gemm.PackBuffers.For(bl);
        bool direct = path == SimdPath.Vector256;
        int ahead = Packing.RowsAhead;
        long lda = k, ldb = k, ldc = n;
        for (int jc = 0; jc < n; jc += bl.NC)
        {
            int nc = Math.Min(bl.NC, n - jc);
            for (int pc = 0; pc < k; pc += bl.KC)
            {
                int kc = Math.Min(bl.KC, k - pc);
                Packing.PackB(b, ldb, true, pc, kc, jc, nc, bl.NR, s.B, Block8x8.IsSupported, ahead);
                for (int ic = 0; ic < m; ic += bl.MC)
                {
                    int mc = Math.Min(bl.MC, m - ic);
                    float* aDirect = null;
                    if (!direct)
                        Packing.PackA(a, lda, false, ic, mc, pc, kc, bl.MR, s.A, Block8x8.IsSupported, ahead);
                    else
                    {
                        aDirect = a + ic * lda + pc;
                        int full = mc / bl.MR * bl.MR;
                        if (full < mc) Packing.PackA(a, lda, false, ic + full, mc - full, pc, kc, bl.MR, s.A);
                    }
                    float* cb = c + ic * ldc + jc;
                    Gemm.MacroKernel(path, bl, mc, nc, kc, s.A, aDirect, lda, false, s.B, cb, ldc, 1f, pc > 0, s.Tile, pc == 0);
                    if (pc + kc < k) continue;
                    Gemm.AddBias(path, cb, ldc, mc, nc, bias + jc);
                    for (int i = 0; i < mc; i++)                      // the epilogue: GELU of the L2-hot block
                        Gelu.Forward(path, new ReadOnlySpan<float>(cb + i * ldc, nc), new Span<float>(gelu + (ic + i) * ldc + jc, nc));
                }
            }
        }
    }
}
