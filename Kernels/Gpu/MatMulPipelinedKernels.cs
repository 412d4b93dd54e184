using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// The matmul kernel (GpuKernels.MatMul.cs has the tiling, the staging geometry and split-K): 64 x 64
// tiles with its staging pipelined (double-buffered).
//
// Why: a kernel whose K loop is load -> barrier -> compute -> barrier (Benchmarks/Lab/MatMul01Plain.cs)
// leaves the multiprocessor idle for a global-memory latency (several hundred cycles) every 16 k
// steps unless other groups happen to fill the gap. Nsight Compute put 61% of that kernel's stall
// cycles on waiting for global loads.
//
// How: two A slabs and two B slabs in shared memory. Step t computes from slab t % 2 while the
// loads of step t + 1 are already in flight into registers; only after the 16 rank-1 updates does
// the thread write those registers into slab (t + 1) % 2, and a single barrier then closes the
// step. One barrier per step instead of two: slab (t + 1) % 2 was last read in step t - 1, which
// ended with a barrier, so writing it during step t races with no one.
//
//   prologue:  registers <- global slab 0;  shared[0] <- registers;  barrier
//   step t:    if more: registers <- global slab t + 1     (issued, not waited for)
//              16 rank-1 updates from shared[t % 2]          (hides the load latency)
//              if more: shared[(t + 1) % 2] <- registers    (waits for the loads here)
//              barrier
//
// Shared memory: 4 x 16 x 68 floats = 17 KB. Registers: 71 on sm_90 (the plain kernel: 39), so 24
// warps per SM instead of 48; the ViT's grids are under one wave, so hiding the load latency is
// worth more than the occupancy. On an H100 it is 1.1-1.5x faster than the plain kernel at every
// shape timed (4096³ 5.11 against 7.56 ms) and reaches 52-77% of cuBLAS SGEMM (docs/performance.md).
internal static class MatMulPipelinedKernels
{
    public const int Tile = 64;    // the C tile of one group is Tile x Tile
    public const int TileK = 16;   // K advances TileK per step (one slab)
    private const int RowQuads = Tile / 4 + 1;   // 16 Quads of data + 1 of padding per slab row
    private const int Pad = RowQuads * 4;        // slab row stride in floats: 68
    private const int Slab = TileK * RowQuads;   // Quads per slab

    [GpuKernel]
    public static void MatMul(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs p)
    {
        var As4 = SharedMemory.Allocate<Quad>(2 * Slab);   // slab s: As[s * Slab * 4 + k * Pad + row]
        var Bs4 = SharedMemory.Allocate<Quad>(2 * Slab);
        var As = As4.Cast<float>();
        var Bs = Bs4.Cast<float>();
        int tid = Group.IdxX, tx = tid % 16, ty = tid / 16;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        int batch = p.KChunk > 0 ? 0 : Grid.IdxZ;
        int kBegin = p.KChunk > 0 ? Grid.IdxZ * p.KChunk : 0;
        int kEnd = p.KChunk > 0 ? Math.Min(p.K, kBegin + p.KChunk) : p.K;
        int aBase = batch * p.StrideA, bBase = batch * p.StrideB, cBase = Grid.IdxZ * p.StrideC;

        var acc = new Block4x4();   // the thread's 4 x 4 outputs, in registers

        // Staging geometry, fixed for the whole K walk: element q (0..3) of a thread is row
        // rA + q rStepA, k kA + q kStepA of the A slab (e = tid + 256 q: k = e % 16 = tx and
        // row = e / 16 = ty + 16 q when k is contiguous, row = e % 64 and k = e / 64 when rows
        // are), likewise for B. Hoisted here so the loop below does no index division.
        bool aKFast = p.TransA == 0, bKFast = p.TransB != 0;
        int rA = aKFast ? ty : tid % Tile, kA = aKFast ? tx : tid / Tile;
        int rStepA = aKFast ? 16 : 0, kStepA = aKFast ? 0 : 4;
        int cB = bKFast ? ty : tid % Tile, kB = bKFast ? tx : tid / Tile;
        int cStepB = bKFast ? 16 : 0, kStepB = bKFast ? 0 : 4;
        int rowStrideA = aKFast ? p.K : 1, kStrideA = aKFast ? 1 : p.M;
        int kStrideB = bKFast ? 1 : p.N, colStrideB = bKFast ? p.K : 1;

        // Prologue: slab 0 through registers into shared slab 0.
        float a0 = LoadA(a, aBase, row0 + rA, kBegin + kA, kEnd, p.M, rowStrideA, kStrideA);
        float a1 = LoadA(a, aBase, row0 + rA + rStepA, kBegin + kA + kStepA, kEnd, p.M, rowStrideA, kStrideA);
        float a2 = LoadA(a, aBase, row0 + rA + 2 * rStepA, kBegin + kA + 2 * kStepA, kEnd, p.M, rowStrideA, kStrideA);
        float a3 = LoadA(a, aBase, row0 + rA + 3 * rStepA, kBegin + kA + 3 * kStepA, kEnd, p.M, rowStrideA, kStrideA);
        float b0 = LoadB(b, bBase, col0 + cB, kBegin + kB, kEnd, p.N, kStrideB, colStrideB);
        float b1 = LoadB(b, bBase, col0 + cB + cStepB, kBegin + kB + kStepB, kEnd, p.N, kStrideB, colStrideB);
        float b2 = LoadB(b, bBase, col0 + cB + 2 * cStepB, kBegin + kB + 2 * kStepB, kEnd, p.N, kStrideB, colStrideB);
        float b3 = LoadB(b, bBase, col0 + cB + 3 * cStepB, kBegin + kB + 3 * kStepB, kEnd, p.N, kStrideB, colStrideB);
        StoreSlab(As, 0, rA, kA, rStepA, kStepA, a0, a1, a2, a3);
        StoreSlab(Bs, 0, cB, kB, cStepB, kStepB, b0, b1, b2, b3);
        Group.Barrier();

        int cur = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += TileK)
        {
            int kn = k0 + TileK;
            bool more = kn < kEnd;   // the same for the whole group: the barrier below is uniform
            if (more)
            {
                a0 = LoadA(a, aBase, row0 + rA, kn + kA, kEnd, p.M, rowStrideA, kStrideA);
                a1 = LoadA(a, aBase, row0 + rA + rStepA, kn + kA + kStepA, kEnd, p.M, rowStrideA, kStrideA);
                a2 = LoadA(a, aBase, row0 + rA + 2 * rStepA, kn + kA + 2 * kStepA, kEnd, p.M, rowStrideA, kStrideA);
                a3 = LoadA(a, aBase, row0 + rA + 3 * rStepA, kn + kA + 3 * kStepA, kEnd, p.M, rowStrideA, kStrideA);
                b0 = LoadB(b, bBase, col0 + cB, kn + kB, kEnd, p.N, kStrideB, colStrideB);
                b1 = LoadB(b, bBase, col0 + cB + cStepB, kn + kB + kStepB, kEnd, p.N, kStrideB, colStrideB);
                b2 = LoadB(b, bBase, col0 + cB + 2 * cStepB, kn + kB + 2 * kStepB, kEnd, p.N, kStrideB, colStrideB);
                b3 = LoadB(b, bBase, col0 + cB + 3 * cStepB, kn + kB + 3 * kStepB, kEnd, p.N, kStrideB, colStrideB);
            }

            // The 16 rank-1 updates, written out: ILGPU does not unroll loops, and ptxas unrolled a
            // loop over a variable slab offset only partly (the register pressure is higher than in
            // the plain kernel), leaving loop overhead in the hottest code.
            int s0 = cur * Slab + ty, t0 = cur * Slab + tx;
            acc.Add(As4[s0 + 0 * RowQuads], Bs4[t0 + 0 * RowQuads]);
            acc.Add(As4[s0 + 1 * RowQuads], Bs4[t0 + 1 * RowQuads]);
            acc.Add(As4[s0 + 2 * RowQuads], Bs4[t0 + 2 * RowQuads]);
            acc.Add(As4[s0 + 3 * RowQuads], Bs4[t0 + 3 * RowQuads]);
            acc.Add(As4[s0 + 4 * RowQuads], Bs4[t0 + 4 * RowQuads]);
            acc.Add(As4[s0 + 5 * RowQuads], Bs4[t0 + 5 * RowQuads]);
            acc.Add(As4[s0 + 6 * RowQuads], Bs4[t0 + 6 * RowQuads]);
            acc.Add(As4[s0 + 7 * RowQuads], Bs4[t0 + 7 * RowQuads]);
            acc.Add(As4[s0 + 8 * RowQuads], Bs4[t0 + 8 * RowQuads]);
            acc.Add(As4[s0 + 9 * RowQuads], Bs4[t0 + 9 * RowQuads]);
            acc.Add(As4[s0 + 10 * RowQuads], Bs4[t0 + 10 * RowQuads]);
            acc.Add(As4[s0 + 11 * RowQuads], Bs4[t0 + 11 * RowQuads]);
            acc.Add(As4[s0 + 12 * RowQuads], Bs4[t0 + 12 * RowQuads]);
            acc.Add(As4[s0 + 13 * RowQuads], Bs4[t0 + 13 * RowQuads]);
            acc.Add(As4[s0 + 14 * RowQuads], Bs4[t0 + 14 * RowQuads]);
            acc.Add(As4[s0 + 15 * RowQuads], Bs4[t0 + 15 * RowQuads]);

            if (more)
            {
                StoreSlab(As, 1 - cur, rA, kA, rStepA, kStepA, a0, a1, a2, a3);
                StoreSlab(Bs, 1 - cur, cB, kB, cStepB, kStepB, b0, b1, b2, b3);
            }
            Group.Barrier();
            cur = 1 - cur;
        }

        int r0 = row0 + 4 * ty, q0 = col0 + 4 * tx;
        Store(c, bias, cBase, r0 + 0, q0, p, acc.C00, acc.C01, acc.C02, acc.C03);
        Store(c, bias, cBase, r0 + 1, q0, p, acc.C10, acc.C11, acc.C12, acc.C13);
        Store(c, bias, cBase, r0 + 2, q0, p, acc.C20, acc.C21, acc.C22, acc.C23);
        Store(c, bias, cBase, r0 + 3, q0, p, acc.C30, acc.C31, acc.C32, acc.C33);
    }

    // Four consecutive outputs of one row, each bounds-checked (N need not be a multiple of 4):
    // c (=|+=) alpha v, plus bias[col] for a Linear layer (HasBias). Benchmarks/Lab kernels reuse it.
    internal static void Store(ArrayView<float> c, ArrayView<float> bias, int cBase, int row, int col, in MatMulKernelArgs p, float v0, float v1, float v2, float v3)
    {
        if (row >= p.M) return;
        int at = cBase + row * p.N + col;
        if (col + 0 < p.N) c[at + 0] = Out(c, bias, at + 0, col + 0, p, v0);
        if (col + 1 < p.N) c[at + 1] = Out(c, bias, at + 1, col + 1, p, v1);
        if (col + 2 < p.N) c[at + 2] = Out(c, bias, at + 2, col + 2, p, v2);
        if (col + 3 < p.N) c[at + 3] = Out(c, bias, at + 3, col + 3, p, v3);
    }

    internal static float Out(ArrayView<float> c, ArrayView<float> bias, int at, int col, in MatMulKernelArgs p, float v)
    {
        float y = p.Alpha * v;
        if (p.Accumulate != 0) y += c[at];
        if (p.HasBias != 0) y += bias[col];
        return y;
    }

    // Element (row, k) of op(A), or 0 outside the matrix or this K slice.
    private static float LoadA(ArrayView<float> a, int aBase, int row, int k, int kEnd, int m, int rowStride, int kStride) =>
        row < m && k < kEnd ? a[aBase + row * rowStride + k * kStride] : 0f;

    // Element (k, col) of op(B), or 0 outside.
    private static float LoadB(ArrayView<float> b, int bBase, int col, int k, int kEnd, int n, int kStride, int colStride) =>
        col < n && k < kEnd ? b[bBase + k * kStride + col * colStride] : 0f;

    // The thread's 4 staged elements into slab `s`: element q at (index i + q iStep, k + q kStep).
    private static void StoreSlab(ArrayView<float> slabs, int s, int i, int k, int iStep, int kStep, float v0, float v1, float v2, float v3)
    {
        int o = s * Slab * 4;
        slabs[o + k * Pad + i] = v0;
        slabs[o + (k + kStep) * Pad + i + iStep] = v1;
        slabs[o + (k + 2 * kStep) * Pad + i + 2 * iStep] = v2;
        slabs[o + (k + 3 * kStep) * Pad + i + 3 * iStep] = v3;
    }

    // A thread's 4 x 4 block of C. A struct so the 16 unrolled updates above read as 16 lines;
    // ILGPU keeps its fields in registers (no local memory: the SASS table's LDL/STL column).
    private struct Block4x4
    {
        public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;

        // One rank-1 update: rows a.X..a.W times columns b.X..b.W.
        public void Add(Quad a, Quad b)
        {
            C00 += a.X * b.X; C01 += a.X * b.Y; C02 += a.X * b.Z; C03 += a.X * b.W;
            C10 += a.Y * b.X; C11 += a.Y * b.Y; C12 += a.Y * b.Z; C13 += a.Y * b.W;
            C20 += a.Z * b.X; C21 += a.Z * b.Y; C22 += a.Z * b.Z; C23 += a.Z * b.W;
            C30 += a.W * b.X; C31 += a.W * b.Y; C32 += a.W * b.Z; C33 += a.W * b.W;
        }
    }
}
