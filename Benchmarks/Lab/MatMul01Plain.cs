using ILGPU;
using ILGPU.Runtime;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Benchmarks.Lab;

// MatMul01: the first GPU matmul. 64 x 64 tiles, 4 x 4 outputs per thread from Quad (LDS.128)
// shared loads, K walked 16 at a time as load -> barrier -> 16 rank-1 updates -> barrier.
// Measured on an H100 (docs/log/2026-performance-log.md, H100 runs 4-5): 35-64% of cuBLAS SGEMM,
// 4096³ in 7.56 ms; Nsight Compute put 61% of its stall cycles on waiting for global loads,
// which MatMul03 (the mainline kernel) hides by double buffering. 39 registers, 8.5 KB shared on sm_90.
// The tiling, staging geometry and store are those of Kernels/Gpu/GpuKernels.MatMul.cs; run it with
// `dotnet run -c Release --project Benchmarks -- --lab matmul` (LabRunner.cs).

internal static class MatMul01Plain
{
    public const int Tile = 64;
    public const int TileK = 16;
    private const int RowQuads = Tile / 4 + 1;   // 16 Quads of data + 1 of padding per slab row
    private const int Pad = RowQuads * 4;        // slab row stride in floats: 68

    public static void MatMul(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs p)
    {
        var As4 = SharedMemory.Allocate<Quad>(TileK * RowQuads);   // As[k * Pad + row]
        var Bs4 = SharedMemory.Allocate<Quad>(TileK * RowQuads);   // Bs[k * Pad + col]
        var As = As4.Cast<float>();                                // the same slabs, float by float
        var Bs = Bs4.Cast<float>();
        int tid = Group.IdxX, tx = tid % 16, ty = tid / 16;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        // Grid z is the batch, or under split-K the K slice (A and B then have one batch).
        int batch = p.KChunk > 0 ? 0 : Grid.IdxZ;
        int kBegin = p.KChunk > 0 ? Grid.IdxZ * p.KChunk : 0;
        int kEnd = p.KChunk > 0 ? Math.Min(p.K, kBegin + p.KChunk) : p.K;
        int aBase = batch * p.StrideA, bBase = batch * p.StrideB, cBase = Grid.IdxZ * p.StrideC;

        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f;
        float c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f;
        float c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;

        // Staging geometry, fixed for the whole K walk: element q (0..3) of a thread is row
        // rA + q rStepA, k kA + q kStepA of the A slab (e = tid + 256 q: k = e % 16 = tx and
        // row = e / 16 = ty + 16 q when k is contiguous, row = e % 64 and k = e / 64 when rows
        // are), likewise for B. Hoisted here so the loop below does no index division.
        bool aKFast = p.TransA == 0, bKFast = p.TransB != 0;       // k contiguous in memory
        int rA = aKFast ? ty : tid % Tile, kA = aKFast ? tx : tid / Tile;
        int rStepA = aKFast ? 16 : 0, kStepA = aKFast ? 0 : 4;
        int cB = bKFast ? ty : tid % Tile, kB = bKFast ? tx : tid / Tile;
        int cStepB = bKFast ? 16 : 0, kStepB = bKFast ? 0 : 4;
        // Element (row, k) of op(A) is a[aBase + row rowStrideA + k kStrideA]; (k, col) of op(B)
        // is b[bBase + k kStrideB + col colStrideB].
        int rowStrideA = aKFast ? p.K : 1, kStrideA = aKFast ? 1 : p.M;
        int kStrideB = bKFast ? 1 : p.N, colStrideB = bKFast ? p.K : 1;

        for (int k0 = kBegin; k0 < kEnd; k0 += TileK)
        {
            // Stage the slabs: 4 elements of each per thread, zero outside the matrix.
            for (int q = 0; q < 4; q++)
            {
                int r = rA + q * rStepA, k = kA + q * kStepA;
                int gr = row0 + r, gk = k0 + k;
                float av = 0f;
                if (gr < p.M && gk < kEnd) av = a[aBase + gr * rowStrideA + gk * kStrideA];
                As[k * Pad + r] = av;

                int cc = cB + q * cStepB;
                k = kB + q * kStepB;
                int gc = col0 + cc;
                gk = k0 + k;
                float bv = 0f;
                if (gc < p.N && gk < kEnd) bv = b[bBase + gk * kStrideB + gc * colStrideB];
                Bs[k * Pad + cc] = bv;
            }
            Group.Barrier();

            // 16 rank-1 updates of the thread's 4 x 4 block: one Quad of A (rows 4ty..4ty+3) and
            // one of B (cols 4tx..4tx+3) per k.
            for (int kk = 0; kk < TileK; kk++)
            {
                Quad av = As4[kk * RowQuads + ty], bv = Bs4[kk * RowQuads + tx];
                c00 += av.X * bv.X; c01 += av.X * bv.Y; c02 += av.X * bv.Z; c03 += av.X * bv.W;
                c10 += av.Y * bv.X; c11 += av.Y * bv.Y; c12 += av.Y * bv.Z; c13 += av.Y * bv.W;
                c20 += av.Z * bv.X; c21 += av.Z * bv.Y; c22 += av.Z * bv.Z; c23 += av.Z * bv.W;
                c30 += av.W * bv.X; c31 += av.W * bv.Y; c32 += av.W * bv.Z; c33 += av.W * bv.W;
            }
            Group.Barrier();
        }

        int r0 = row0 + 4 * ty, q0 = col0 + 4 * tx;
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 0, q0, p, c00, c01, c02, c03);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 1, q0, p, c10, c11, c12, c13);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 2, q0, p, c20, c21, c22, c23);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 3, q0, p, c30, c31, c32, c33);
    }
}
