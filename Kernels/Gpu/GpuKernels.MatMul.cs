using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Batched matmul C_b (=|+=) alpha op(A_b) op(B_b), op(A) [M, K], op(B) [K, N].
//
// Algorithm: classic shared-memory tiling with register blocking.
//   Each group computes one 64 x 64 tile of C; the K axis is walked 16 at a time. Per step the
//   group stages a 64 x 16 slab of op(A) and a 16 x 64 slab of op(B) in shared memory, then
//   every thread does 16 rank-1 updates of its own 4 x 4 block of C held in 16 registers.
//   Per step a thread loads 8 floats from shared memory and does 16 FMAs per k, instead of 2
//   global loads per FMA in the naive kernel.
//
//            B slab: Bs[16][64]                thread (tx, ty), tx, ty in 0..15, owns
//          +----------------+                  rows ty, ty+16, ty+32, ty+48 and
//          |                |                  cols tx, tx+16, tx+32, tx+48 of the tile:
//   A slab +----------------+                  strided, so a warp's shared reads are
//  As[16][64]   C tile 64x64                   broadcasts (As) and 16 consecutive words
//   (k-major)   256 threads x 16 outputs       (Bs), free of bank conflicts.
//
// Launch: grid (ceil(N / 64), ceil(M / 64), batch), group 256 = 16 x 16 threads.
// Shared memory: 2 x 16 x 65 floats = 8.3 KB (the +1 column pad keeps the transposed stores
//   conflict free), so several groups fit per SM.
// Loads: each of the 256 threads moves 4 elements of each slab. Which index varies fastest
//   between neighbouring threads follows the operand's memory layout (TransA / TransB), so the
//   global loads are coalesced for all four transpose combinations. Out-of-range elements (ragged
//   M, N, K) load as 0, so the inner loop needs no bounds checks; only the final store checks.
public sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>? _matMul;

    public void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate)
    {
        if (shape.Batch == 0 || shape.M == 0 || shape.N == 0) return;
        var args = new MatMulKernelArgs(shape.M, shape.N, shape.K, shape.TransA ? 1 : 0, shape.TransB ? 1 : 0,
            checked((int)shape.StrideA), checked((int)shape.StrideB), checked((int)shape.StrideC), alpha, accumulate ? 1 : 0);
        var grid = new Index3D((shape.N + MatMulKernels.Tile - 1) / MatMulKernels.Tile, (shape.M + MatMulKernels.Tile - 1) / MatMulKernels.Tile, shape.Batch);
        (_matMul ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>(MatMulKernels.MatMul))(
            new KernelConfig(grid, new Index3D(GroupSize, 1, 1)), V(a), V(b), V(c), args);
    }
}

/// <summary>MatMulShape as a kernel parameter (flags as ints, strides in floats).</summary>
public readonly record struct MatMulKernelArgs(int M, int N, int K, int TransA, int TransB, int StrideA, int StrideB, int StrideC, float Alpha, int Accumulate);

/// <summary>The kernel of GpuKernels.MatMul.cs.</summary>
public static class MatMulKernels
{
    public const int Tile = 64;
    private const int TileK = 16;
    private const int Pad = Tile + 1;

    [GpuKernel]
    public static void MatMul(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, MatMulKernelArgs p)
    {
        var As = SharedMemory.Allocate<float>(TileK * Pad);   // As[k * Pad + row]
        var Bs = SharedMemory.Allocate<float>(TileK * Pad);   // Bs[k * Pad + col]
        int tid = Group.IdxX, tx = tid % 16, ty = tid / 16;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile, batch = Grid.IdxZ;
        int aBase = batch * p.StrideA, bBase = batch * p.StrideB, cBase = batch * p.StrideC;

        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f;
        float c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f;
        float c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;

        for (int k0 = 0; k0 < p.K; k0 += TileK)
        {
            // Stage the slabs: 4 elements of each per thread, zero outside the matrix.
            for (int q = 0; q < 4; q++)
            {
                int e = tid + q * GpuKernels.GroupSize;
                int r, k;
                if (p.TransA != 0) { r = e % Tile; k = e / Tile; }   // A stored [K, M]: rows contiguous
                else { k = e % TileK; r = e / TileK; }               // A stored [M, K]: k contiguous
                int gr = row0 + r, gk = k0 + k;
                float av = 0f;
                if (gr < p.M && gk < p.K)
                    av = p.TransA != 0 ? a[aBase + gk * p.M + gr] : a[aBase + gr * p.K + gk];
                As[k * Pad + r] = av;

                int cc;
                if (p.TransB != 0) { k = e % TileK; cc = e / TileK; }  // B stored [N, K]: k contiguous
                else { cc = e % Tile; k = e / Tile; }                  // B stored [K, N]: cols contiguous
                int gc = col0 + cc;
                gk = k0 + k;
                float bv = 0f;
                if (gc < p.N && gk < p.K)
                    bv = p.TransB != 0 ? b[bBase + gc * p.K + gk] : b[bBase + gk * p.N + gc];
                Bs[k * Pad + cc] = bv;
            }
            Group.Barrier();

            // 16 rank-1 updates of the thread's 4 x 4 block, unrolled by hand over the block.
            for (int kk = 0; kk < TileK; kk++)
            {
                int ao = kk * Pad + ty, bo = kk * Pad + tx;
                float a0 = As[ao], a1 = As[ao + 16], a2 = As[ao + 32], a3 = As[ao + 48];
                float b0 = Bs[bo], b1 = Bs[bo + 16], b2 = Bs[bo + 32], b3 = Bs[bo + 48];
            c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
            c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
            c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
            c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }

        int a0Row = row0 + ty, b0Col = col0 + tx;
        Store(c, cBase, a0Row + 0, b0Col + 0, p, c00); Store(c, cBase, a0Row + 0, b0Col + 16, p, c01); Store(c, cBase, a0Row + 0, b0Col + 32, p, c02); Store(c, cBase, a0Row + 0, b0Col + 48, p, c03);
        Store(c, cBase, a0Row + 16, b0Col + 0, p, c10); Store(c, cBase, a0Row + 16, b0Col + 16, p, c11); Store(c, cBase, a0Row + 16, b0Col + 32, p, c12); Store(c, cBase, a0Row + 16, b0Col + 48, p, c13);
        Store(c, cBase, a0Row + 32, b0Col + 0, p, c20); Store(c, cBase, a0Row + 32, b0Col + 16, p, c21); Store(c, cBase, a0Row + 32, b0Col + 32, p, c22); Store(c, cBase, a0Row + 32, b0Col + 48, p, c23);
        Store(c, cBase, a0Row + 48, b0Col + 0, p, c30); Store(c, cBase, a0Row + 48, b0Col + 16, p, c31); Store(c, cBase, a0Row + 48, b0Col + 32, p, c32); Store(c, cBase, a0Row + 48, b0Col + 48, p, c33);
    }

    private static void Store(ArrayView<float> c, int cBase, int row, int col, in MatMulKernelArgs p, float acc)
    {
        if (row >= p.M || col >= p.N) return;
        int at = cBase + row * p.N + col;
        c[at] = p.Accumulate != 0 ? c[at] + p.Alpha * acc : p.Alpha * acc;
    }
}
