using ILGPU;
using ILGPU.Runtime;

using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Benchmarks.Lab;

// MatMul02: 128 x 128 tiles, 8 x 8 outputs per thread (64 FMAs per 4 Quad loads instead of 16 per 2).
// Measured on an H100 (docs/log/2026-performance-log.md): slower than MatMul01 at every shape,
// 4096³ 8.26 against 7.62 ms. 97 registers on sm_90: 2 groups per SM, no double buffering.
//
// The same algorithm as MatMul01Plain.cs (shared-memory slabs, register blocking, zero-filled
// ragged edges, all four transpose layouts coalesced), with twice the tile in each direction.
// Why: per k, a thread of the 64 x 64 kernel does 16 FMAs for 2 shared loads (LDS.128); here it
// does 64 FMAs for 4, so shared-memory bandwidth stops being the limit and each warp has 64
// independent accumulations in flight. Measured on an H100 before this kernel existed: the 64 x 64
// kernel reached 37% of cuBLAS SGEMM at 4096³ (docs/log/2026-performance-log.md, H100 runs 1-4).
//
// Thread (tx, ty), tx, ty in 0..15, owns rows {4ty..4ty+3, 64+4ty..64+4ty+3} and the same two
// runs of columns: two Quads of A and two of B per k, 64 FMAs. The two runs sit 64 apart rather
// than 8 consecutive so that a warp's Quad reads of a slab row cover 16 distinct Quads (no bank
// conflict), as in the 64 x 64 kernel.
//   A slab: As[8][128 + 4], B slab: Bs[8][128 + 4]: 2 x 8 x 132 floats = 8.25 KB of shared memory.
//   TileK = 8: each of the 256 threads stages 4 elements of each slab per step (1024 = 8 x 128).
// Registers: 64 accumulators + 16 operands + addressing; ptxas allocates 97 per thread on sm_90
//   and 103 on sm_80 (ptxas 11.8): 2 groups of 256 threads per multiprocessor.
// Measured on an H100 (docs/log/2026-performance-log.md): SLOWER than the 64 x 64 kernel at every
// shape, 4096³ included (8.26 ms against 7.62). The likely reasons, for whoever picks this up: 2 groups
// per multiprocessor leave too few warps to hide the global-load latency of the staging, which
// has no double buffering (each k step waits for its loads, then computes); and the ViT shapes
// give too few 128 x 128 tiles to fill 132 multiprocessors. It stays here as the starting
// point for a double-buffered 8 x 8 version and as a validated example of the 8 x 8 register tile.
internal static class MatMul02Large128
{
    public const int Tile = 128;
    public const int TileK = 8;
    private const int RowQuads = Tile / 4 + 1;   // 32 Quads of data + 1 of padding per slab row
    private const int Pad = RowQuads * 4;        // slab row stride in floats: 132

    public static void MatMul(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs p)
    {
        var As4 = SharedMemory.Allocate<Quad>(TileK * RowQuads);   // As[k * Pad + row]
        var Bs4 = SharedMemory.Allocate<Quad>(TileK * RowQuads);   // Bs[k * Pad + col]
        var As = As4.Cast<float>();
        var Bs = Bs4.Cast<float>();
        int tid = Group.IdxX, tx = tid % 16, ty = tid / 16;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        int batch = p.KChunk > 0 ? 0 : Grid.IdxZ;
        int kBegin = p.KChunk > 0 ? Grid.IdxZ * p.KChunk : 0;
        int kEnd = p.KChunk > 0 ? Math.Min(p.K, kBegin + p.KChunk) : p.K;
        int aBase = batch * p.StrideA, bBase = batch * p.StrideB, cBase = Grid.IdxZ * p.StrideC;

        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c04 = 0f, c05 = 0f, c06 = 0f, c07 = 0f;
        float c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f, c14 = 0f, c15 = 0f, c16 = 0f, c17 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f, c24 = 0f, c25 = 0f, c26 = 0f, c27 = 0f;
        float c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f, c34 = 0f, c35 = 0f, c36 = 0f, c37 = 0f;
        float c40 = 0f, c41 = 0f, c42 = 0f, c43 = 0f, c44 = 0f, c45 = 0f, c46 = 0f, c47 = 0f;
        float c50 = 0f, c51 = 0f, c52 = 0f, c53 = 0f, c54 = 0f, c55 = 0f, c56 = 0f, c57 = 0f;
        float c60 = 0f, c61 = 0f, c62 = 0f, c63 = 0f, c64 = 0f, c65 = 0f, c66 = 0f, c67 = 0f;
        float c70 = 0f, c71 = 0f, c72 = 0f, c73 = 0f, c74 = 0f, c75 = 0f, c76 = 0f, c77 = 0f;

        // Staging: element e = tid + 256 q (q = 0..3) of a 8 x 128 slab is (k = e % 8,
        // row = e / 8) when k is contiguous in memory, (row = e % 128, k = e / 128) when rows are.
        bool aKFast = p.TransA == 0, bKFast = p.TransB != 0;
        int rA = aKFast ? tid / TileK : tid % Tile, kA = aKFast ? tid % TileK : tid / Tile;
        int rStepA = aKFast ? 32 : 0, kStepA = aKFast ? 0 : 2;
        int cB = bKFast ? tid / TileK : tid % Tile, kB = bKFast ? tid % TileK : tid / Tile;
        int cStepB = bKFast ? 32 : 0, kStepB = bKFast ? 0 : 2;
        int rowStrideA = aKFast ? p.K : 1, kStrideA = aKFast ? 1 : p.M;
        int kStrideB = bKFast ? 1 : p.N, colStrideB = bKFast ? p.K : 1;

        for (int k0 = kBegin; k0 < kEnd; k0 += TileK)
        {
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

            for (int kk = 0; kk < TileK; kk++)
            {
                int ka = kk * RowQuads;
                Quad a0 = As4[ka + ty], a1 = As4[ka + 16 + ty], b0 = Bs4[ka + tx], b1 = Bs4[ka + 16 + tx];
                c00 += a0.X * b0.X; c01 += a0.X * b0.Y; c02 += a0.X * b0.Z; c03 += a0.X * b0.W; c04 += a0.X * b1.X; c05 += a0.X * b1.Y; c06 += a0.X * b1.Z; c07 += a0.X * b1.W;
                c10 += a0.Y * b0.X; c11 += a0.Y * b0.Y; c12 += a0.Y * b0.Z; c13 += a0.Y * b0.W; c14 += a0.Y * b1.X; c15 += a0.Y * b1.Y; c16 += a0.Y * b1.Z; c17 += a0.Y * b1.W;
                c20 += a0.Z * b0.X; c21 += a0.Z * b0.Y; c22 += a0.Z * b0.Z; c23 += a0.Z * b0.W; c24 += a0.Z * b1.X; c25 += a0.Z * b1.Y; c26 += a0.Z * b1.Z; c27 += a0.Z * b1.W;
                c30 += a0.W * b0.X; c31 += a0.W * b0.Y; c32 += a0.W * b0.Z; c33 += a0.W * b0.W; c34 += a0.W * b1.X; c35 += a0.W * b1.Y; c36 += a0.W * b1.Z; c37 += a0.W * b1.W;
                c40 += a1.X * b0.X; c41 += a1.X * b0.Y; c42 += a1.X * b0.Z; c43 += a1.X * b0.W; c44 += a1.X * b1.X; c45 += a1.X * b1.Y; c46 += a1.X * b1.Z; c47 += a1.X * b1.W;
                c50 += a1.Y * b0.X; c51 += a1.Y * b0.Y; c52 += a1.Y * b0.Z; c53 += a1.Y * b0.W; c54 += a1.Y * b1.X; c55 += a1.Y * b1.Y; c56 += a1.Y * b1.Z; c57 += a1.Y * b1.W;
                c60 += a1.Z * b0.X; c61 += a1.Z * b0.Y; c62 += a1.Z * b0.Z; c63 += a1.Z * b0.W; c64 += a1.Z * b1.X; c65 += a1.Z * b1.Y; c66 += a1.Z * b1.Z; c67 += a1.Z * b1.W;
                c70 += a1.W * b0.X; c71 += a1.W * b0.Y; c72 += a1.W * b0.Z; c73 += a1.W * b0.W; c74 += a1.W * b1.X; c75 += a1.W * b1.Y; c76 += a1.W * b1.Z; c77 += a1.W * b1.W;
            }
            Group.Barrier();
        }

        int r0 = row0 + 4 * ty, q0 = col0 + 4 * tx;
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 0, q0, p, c00, c01, c02, c03);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 0, q0 + 64, p, c04, c05, c06, c07);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 1, q0, p, c10, c11, c12, c13);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 1, q0 + 64, p, c14, c15, c16, c17);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 2, q0, p, c20, c21, c22, c23);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 2, q0 + 64, p, c24, c25, c26, c27);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 3, q0, p, c30, c31, c32, c33);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 3, q0 + 64, p, c34, c35, c36, c37);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 64, q0, p, c40, c41, c42, c43);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 64, q0 + 64, p, c44, c45, c46, c47);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 65, q0, p, c50, c51, c52, c53);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 65, q0 + 64, p, c54, c55, c56, c57);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 66, q0, p, c60, c61, c62, c63);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 66, q0 + 64, p, c64, c65, c66, c67);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 67, q0, p, c70, c71, c72, c73);
        MatMulPipelinedKernels.Store(c, bias, cBase, r0 + 67, q0 + 64, p, c74, c75, c76, c77);
    }
}
