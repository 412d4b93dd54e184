using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Kernels.Cpu;

// Batched matmul C_b (=|+=) alpha op(A_b) op(B_b) on the CPU.
//
// The arithmetic lives in MatMul/: Gemm.cs (cache blocking, GotoBLAS loop order), Packing.cs
// (transposes absorbed while packing panels) and the register-blocked micro-kernels
// MicroKernel512.cs (8 x 32, AVX-512) and MicroKernel256.cs (6 x 16, AVX2).
//
// This file only splits the work across cores. Each task is an independent single-threaded Gemm
// on its own slice of C, packing its own panels into per-thread scratch, so tasks never share
// writable memory and never synchronise:
// - batch >= cores (attention-sized batched products): a contiguous range of whole batches each;
// - otherwise each product is cut into (cores / batch) slabs of rows, or of columns when C is
//   wider than tall, on micro-tile boundaries so no slab creates extra ragged tiles.
// Products under ~1 MFLOP run inline: waking a second core costs more than it saves.
public sealed partial class CpuKernels
{
    /// <summary>
    /// Which micro-kernel matmul and attention use; defaults to the widest the CPU accelerates.
    /// Tests and benchmarks set it to cover or compare both paths.
    /// </summary>
    internal SimdPath SimdPath { get; init; } = SimdPaths.Detected;

    public void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate)
    {
        var sh = shape;
        if (sh.Batch <= 0 || sh.M <= 0 || sh.N <= 0) return;
        var As = CpuBuffer.Of(a); var Bs = CpuBuffer.Of(b); var Cs = CpuBuffer.Of(c);
        var path = SimdPath;
        var (mr, nr) = Gemm.Tile(path);
        int workers = Par.Workers;

        if (workers <= 1 || sh.Flops < 1 << 20)
        {
            for (int bt = 0; bt < sh.Batch; bt++) Slab(As, Bs, Cs, sh, path, bt, 0, sh.M, 0, sh.N, alpha, accumulate);
            return;
        }
        if (sh.Batch >= workers)
        {
            Parallel.For(0, workers, t =>
            {
                int b0 = (int)((long)sh.Batch * t / workers), b1 = (int)((long)sh.Batch * (t + 1) / workers);
                for (int bt = b0; bt < b1; bt++) Slab(As, Bs, Cs, sh, path, bt, 0, sh.M, 0, sh.N, alpha, accumulate);
            });
            return;
        }
        int splits = (workers + sh.Batch - 1) / sh.Batch;
        bool byRows = sh.M >= sh.N;
        Parallel.For(0, sh.Batch * splits, t =>
        {
            int bt = t / splits, piece = t % splits;
            if (byRows)
                Slab(As, Bs, Cs, sh, path, bt, Cut(sh.M, piece, splits, mr), Cut(sh.M, piece + 1, splits, mr), 0, sh.N, alpha, accumulate);
            else
                Slab(As, Bs, Cs, sh, path, bt, 0, sh.M, Cut(sh.N, piece, splits, nr), Cut(sh.N, piece + 1, splits, nr), alpha, accumulate);
        });
    }

    // Boundary `piece` of `parts` near-equal pieces of [0, length), rounded to a multiple of `grain`.
    private static int Cut(int length, int piece, int parts, int grain)
    {
        if (piece >= parts) return length;
        long x = (long)length * piece / parts;
        return (int)Math.Min(length, (x + grain / 2) / grain * grain);
    }

    // C_bt[i0..i1, j0..j1] of one batch: the slab's corner of A, B and C, handed to Gemm.
    private static unsafe void Slab(CpuBuffer A, CpuBuffer B, CpuBuffer C, MatMulShape sh, SimdPath path,
        int bt, int i0, int i1, int j0, int j1, float alpha, bool accumulate)
    {
        if (i1 <= i0 || j1 <= j0) return;
        long lda = sh.TransA ? sh.M : sh.K;  // A stored [K, M] or [M, K]
        long ldb = sh.TransB ? sh.K : sh.N;  // B stored [N, K] or [K, N]
        long aOff = bt * sh.StrideA + (sh.TransA ? i0 : i0 * lda);
        long bOff = bt * sh.StrideB + (sh.TransB ? j0 * ldb : j0);
        long cOff = bt * sh.StrideC + (long)i0 * sh.N + j0;
        fixed (float* pa = A.Array, pb = B.Array, pc = C.Array)
            Gemm.Run(path, i1 - i0, j1 - j0, sh.K,
                pa + A.Offset + aOff, lda, sh.TransA,
                pb + B.Offset + bOff, ldb, sh.TransB,
                pc + C.Offset + cOff, sh.N, alpha, accumulate);
    }
}
