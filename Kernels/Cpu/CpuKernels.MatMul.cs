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
// - a batch of at least ChunksPerWorker products per core (batched products such as the unfused
//   attention's): whole products per task, dealt out in contiguous ranges;
// - otherwise each product is cut into slabs of rows, or of columns when C is wider than tall,
//   on micro-tile boundaries so no slab creates extra ragged tiles: enough that every core gets
//   a task, and more (up to ChunksPerWorker per core, so that a slower core does fewer of them)
//   only while the slabs stay at least MinSlab rows or columns thick.
// Products under ~1 MFLOP run inline: waking a second core costs more than it saves.
// docs/cpu-kernels.md follows the whole chain, this file to the micro-kernels.
internal sealed partial class CpuKernels
{
    /// <summary>
    /// Which micro-kernel matmul and attention use; defaults to the widest the CPU accelerates.
    /// Tests and benchmarks set it to cover or compare both paths.
    /// </summary>
    internal SimdPath SimdPath { get; init; } = SimdPaths.Detected;

    // One task is a whole batch (Splits == 1) or one slab of rows (ByRows) or columns of one batch.
    private readonly record struct MatMulJob(CpuBuffer A, CpuBuffer B, CpuBuffer C, CpuBuffer? Bias, MatMulShape Shape, SimdPath Path,
        float Alpha, bool Accumulate, int Splits, bool ByRows, int MR, int NR);

    public void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate, DeviceBuffer? bias = null)
    {
        var sh = shape;
        if (sh.Batch <= 0 || sh.M <= 0 || sh.N <= 0) return;
        var As = CpuBuffer.Of(a); var Bs = CpuBuffer.Of(b); var Cs = CpuBuffer.Of(c);
        var Bias = bias is null ? null : CpuBuffer.Of(bias);
        var path = SimdPath;
        var (mr, nr) = Gemm.Tile(path);
        int workers = Par.Workers;

        if (workers <= 1 || sh.Flops < 1 << 20)
        {
            for (int bt = 0; bt < sh.Batch; bt++) Slab(As, Bs, Cs, Bias, sh, path, bt, 0, sh.M, 0, sh.N, alpha, accumulate);
            return;
        }
        // Aim for ChunksPerWorker pieces per worker, so a core that runs slower takes fewer of them
        // (see ChunksPerWorker). batch >= that: whole batches per task; otherwise `splits` slabs
        // per batch: at least one task per worker, and more only while the slabs stay MinSlab rows
        // (or columns) thick: every slab packs its own copy of the operand all slabs share (all of
        // B for row slabs), so thin slabs multiply packing.
        // The flops test above already decided that this product goes parallel.
        const int MinSlab = 512;
        int pieces = workers * Math.Max(1, ChunksPerWorker);
        bool byRows = sh.M >= sh.N;
        int splits = 1;
        if (sh.Batch < pieces)
        {
            int least = (workers + sh.Batch - 1) / sh.Batch; // at least one task per worker
            splits = Math.Max(least, Math.Min((pieces + sh.Batch - 1) / sh.Batch, (byRows ? sh.M : sh.N) / MinSlab));
        }
        int tasks = sh.Batch * splits;
        var job = new MatMulJob(As, Bs, Cs, Bias, sh, path, alpha, accumulate, splits, byRows, mr, nr);
        Par.For(tasks, (long)Math.Ceiling(sh.Flops / tasks), job, static (in MatMulJob j, int t0, int t1) =>
        {
            var sh = j.Shape;
            for (int t = t0; t < t1; t++)
            {
                int bt = t / j.Splits, piece = t % j.Splits;
                if (j.Splits == 1)
                    Slab(j.A, j.B, j.C, j.Bias, sh, j.Path, bt, 0, sh.M, 0, sh.N, j.Alpha, j.Accumulate);
                else if (j.ByRows)
                    Slab(j.A, j.B, j.C, j.Bias, sh, j.Path, bt, Cut(sh.M, piece, j.Splits, j.MR), Cut(sh.M, piece + 1, j.Splits, j.MR), 0, sh.N, j.Alpha, j.Accumulate);
                else
                    Slab(j.A, j.B, j.C, j.Bias, sh, j.Path, bt, 0, sh.M, Cut(sh.N, piece, j.Splits, j.NR), Cut(sh.N, piece + 1, j.Splits, j.NR), j.Alpha, j.Accumulate);
            }
        }, chunks: Math.Min(tasks, pieces));
    }

    // Boundary `piece` of `parts` near-equal pieces of [0, length), rounded to a multiple of `grain`.
    private static int Cut(int length, int piece, int parts, int grain)
    {
        if (piece >= parts) return length;
        long x = (long)length * piece / parts;
        return (int)Math.Min(length, (x + grain / 2) / grain * grain);
    }

    // C_bt[i0..i1, j0..j1] of one batch: the slab's corner of A, B and C, handed to Gemm.
    private static unsafe void Slab(CpuBuffer A, CpuBuffer B, CpuBuffer C, CpuBuffer? Bias, MatMulShape sh, SimdPath path,
        int bt, int i0, int i1, int j0, int j1, float alpha, bool accumulate)
    {
        if (i1 <= i0 || j1 <= j0) return;
        long lda = sh.TransA ? sh.M : sh.K;  // A stored [K, M] or [M, K]
        long ldb = sh.TransB ? sh.K : sh.N;  // B stored [N, K] or [K, N]
        long aOff = bt * sh.StrideA + (sh.TransA ? i0 : i0 * lda);
        long bOff = bt * sh.StrideB + (sh.TransB ? j0 * ldb : j0);
        long cOff = bt * sh.StrideC + (long)i0 * sh.N + j0;
        fixed (float* pa = A.Array, pb = B.Array, pc = C.Array, pbias = Bias is null ? null : Bias.Array)
            Gemm.Run(path, i1 - i0, j1 - j0, sh.K,
                pa + A.Offset + aOff, lda, sh.TransA,
                pb + B.Offset + bOff, ldb, sh.TransB,
                pc + C.Offset + cOff, sh.N, alpha, accumulate,
                pbias is null ? null : pbias + Bias!.Offset + j0);
    }
}
