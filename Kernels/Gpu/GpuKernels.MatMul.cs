using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Batched matmul C_b (=|+=) alpha op(A_b) op(B_b), op(A) [M, K], op(B) [K, N].
//
// Versions: this file's kernel is the first, plain one (read it first); the dispatcher below
// runs every product on its double-buffered twin, MatMulPipelinedKernels.cs, which hides the
// global-load latency behind the previous slab's FMAs and measured 1.1-1.5x faster on an H100.
// The dispatcher's one decision per shape is split-K (below). MatMulLargeKernels.cs (128 x 128
// tiles) lost everywhere; it and this file's kernel run only when MatMulTiles forces them.
//
// Algorithm: classic shared-memory tiling with register blocking.
//   Each group computes one 64 x 64 tile of C; the K axis is walked 16 at a time. Per step the
//   group stages a 64 x 16 slab of op(A) and a 16 x 64 slab of op(B) in shared memory, then
//   every thread does 16 rank-1 updates of its own 4 x 4 block of C held in 16 registers.
//   Per k a thread reads its 4 values of A and its 4 values of B as two 16-byte shared loads
//   (LDS.128) and does 16 FMAs: 8 FMAs per shared load instruction.
//
//            B slab: Bs[16][64 (+4 pad)]        thread (tx, ty), tx, ty in 0..15, owns
//          +----------------+                   rows 4ty .. 4ty+3 and cols 4tx .. 4tx+3 of
//          |                |                   the tile: contiguous, so each k needs one
//   A slab +----------------+                   Quad (4 floats, 16 B) of As and one of Bs.
//  As[16][64 (+4)]  C tile 64x64                A warp reads 16 consecutive Quads of Bs (no
//   (k-major)   256 threads x 16 outputs        bank conflict) and 2 Quads of As (broadcast).
//
// Launch: grid (ceil(N / 64), ceil(M / 64), batch), group 256 = 16 x 16 threads.
// Shared memory: 2 x 16 x 68 floats = 8.5 KB. Rows are padded by one Quad (4 floats): a row
//   stride of 68 floats keeps the Quads 16-byte aligned for the vector loads and spreads the
//   k-strided staging stores of a warp over the banks (at most 2 threads per bank).
// Loads: each of the 256 threads moves 4 elements of each slab. Which index varies fastest
//   between neighbouring threads follows the operand's memory layout (TransA / TransB), so the
//   global loads are coalesced for all four transpose combinations. Out-of-range elements (ragged
//   M, N, K) load as 0, so the inner loop needs no bounds checks; only the final store checks.
// Stores: the 4 store instructions of a warp together cover 2 rows x 64 consecutive columns of C.
//   A Linear layer's bias is added there too (HasBias: bias[col]), so y = x Wᵀ + b is one launch.
// Split-K: a single product whose tiles cannot fill the device (a weight gradient, K = batch x
//   tokens) cuts K into slices; grid z then walks slices instead of batches, each slice writes
//   its own partial [M, N], and the column reduction of GpuKernels.Reduce.cs sums them into C.
// docs/kernels.md "SASS analysis" shows the machine code this produces (tools/sass-report.sh).
public sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>? _matMul, _matMulLarge, _matMulPipelined;

    /// <summary>
    /// Which matmul kernel runs. Auto is the double-buffered 64 x 64 kernel
    /// (MatMulPipelinedKernels.cs): on an H100 it beat the plain 64 x 64 kernel of this file at
    /// every shape `vit kernels bench` times (4096³ 5.11 against 7.56 ms, the ViT shapes by
    /// 1.1-1.5x; docs/log/2026-performance-log.md, H100 run 5). The plain kernel (Plain) stays as
    /// the readable first version and the 128 x 128 kernel (Large, MatMulLargeKernels.cs) measured
    /// slower everywhere; both run only when forced. Tests force each to check all three.
    /// </summary>
    public MatMulTiling MatMulTiles { get; set; } = MatMulTiling.Auto;

    public void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate, DeviceBuffer? bias = null)
    {
        if (shape.Batch == 0 || shape.M == 0 || shape.N == 0) return;
        // Without a bias the kernels still take a bias view (one float, never read): one kernel
        // signature for both.
        var biasView = bias is null ? Scratch("matmul-no-bias", 1) : V(bias);
        int hasBias = bias is null ? 0 : 1;
        var tiling = MatMulTiles;
        int tile = tiling == MatMulTiling.Large ? MatMulLargeKernels.Tile : MatMulKernels.Tile;
        int tilesX = (shape.N + tile - 1) / tile, tilesY = (shape.M + tile - 1) / tile;
        int splits = SplitKCount(shape, tilesX * tilesY);
        if (splits > 1)
        {
            // Split-K: slice z of K writes its product into partial[z] ([M, N] each), then the
            // column reduction sums the slices into C, applying `=` or `+=` there.
            int kChunk = (shape.K + splits - 1) / splits;
            kChunk = (kChunk + MatMulKernels.TileK - 1) / MatMulKernels.TileK * MatMulKernels.TileK;
            splits = (shape.K + kChunk - 1) / kChunk;
            int mn = shape.M * shape.N;
            var partial = Scratch("matmul-split-k", splits * mn);                       // partial: [splits, M, N]
            var splitArgs = new MatMulKernelArgs(shape.M, shape.N, shape.K, shape.TransA ? 1 : 0, shape.TransB ? 1 : 0,
                0, 0, mn, alpha, 0, kChunk, 0);
            LaunchMatMul(tiling, new Index3D(tilesX, tilesY, splits), V(a), V(b), partial, biasView, splitArgs);
            ReduceMid(partial, partial, 0, V(c), new BroadcastShape(1, splits, mn), 1f, accumulate);
            // Split-K is for single products (batch 1): the bias goes on after the slices are summed.
            if (bias is not null) AddBroadcast(c, bias, c, 1, shape.M, shape.N, 1f);
            return;
        }
        var args = new MatMulKernelArgs(shape.M, shape.N, shape.K, shape.TransA ? 1 : 0, shape.TransB ? 1 : 0,
            checked((int)shape.StrideA), checked((int)shape.StrideB), checked((int)shape.StrideC), alpha, accumulate ? 1 : 0, 0, hasBias);
        LaunchMatMul(tiling, new Index3D(tilesX, tilesY, shape.Batch), V(a), V(b), V(c), biasView, args);
    }

    /// <summary>
    /// How many K slices a single (unbatched) product needs so that its tiles fill the device:
    /// a weight gradient such as [192, 576] = Xᵀ dY over the 8,320 rows of a vit-tiny batch is 27
    /// tiles of 64 x 64, each walking K = 8,320 alone, on a GPU with 132 multiprocessors
    /// (measured: 7% of cuBLAS before this split). 1 = no split.
    /// </summary>
    private int SplitKCount(in MatMulShape shape, int tiles)
    {
        if (shape.Batch != 1 || tiles >= _targetGroups) return 1;
        return (int)Math.Max(1, Math.Min((_targetGroups + tiles - 1) / tiles, shape.K / _minKPerSplit));
    }

    private void LaunchMatMul(MatMulTiling tiling, Index3D grid, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs args)
    {
        var kernel = tiling switch
        {
            MatMulTiling.Large => _matMulLarge ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>(MatMulLargeKernels.MatMul),
            MatMulTiling.Plain => _matMul ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>(MatMulKernels.MatMul),
            _ => _matMulPipelined ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>(MatMulPipelinedKernels.MatMul),
        };
        kernel(new KernelConfig(grid, new Index3D(GroupSize, 1, 1)), a, b, c, bias, args);
    }
}

/// <summary>The matmul kernel choice of <see cref="GpuKernels.MatMulTiles"/>.</summary>
public enum MatMulTiling { Auto, Plain, Large, Pipelined }

/// <summary>
/// MatMulShape as a kernel parameter (flags as ints, strides in floats). KChunk > 0 selects
/// split-K: grid z is then the K slice [z KChunk, (z + 1) KChunk), not the batch, and StrideC
/// separates the slices' partial products. HasBias = 1 adds bias[col] to every stored output.
/// </summary>
public readonly record struct MatMulKernelArgs(int M, int N, int K, int TransA, int TransB, int StrideA, int StrideB, int StrideC, float Alpha, int Accumulate, int KChunk, int HasBias);

/// <summary>
/// Four consecutive floats of a shared slab row. ILGPU loads a struct of four floats at a
/// 16-byte aligned address with one vector instruction (ld.shared.v4.f32, SASS LDS.128).
/// </summary>
internal struct Quad
{
    public float X, Y, Z, W;
}

/// <summary>The kernel of GpuKernels.MatMul.cs.</summary>
public static class MatMulKernels
{
    public const int Tile = 64;
    public const int TileK = 16;
    private const int RowQuads = Tile / 4 + 1;   // 16 Quads of data + 1 of padding per slab row
    private const int Pad = RowQuads * 4;        // slab row stride in floats: 68

    [GpuKernel]
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
        Store(c, bias, cBase, r0 + 0, q0, p, c00, c01, c02, c03);
        Store(c, bias, cBase, r0 + 1, q0, p, c10, c11, c12, c13);
        Store(c, bias, cBase, r0 + 2, q0, p, c20, c21, c22, c23);
        Store(c, bias, cBase, r0 + 3, q0, p, c30, c31, c32, c33);
    }

    // Four consecutive outputs of one row, each bounds-checked (N need not be a multiple of 4):
    // c (=|+=) alpha v, plus bias[col] for a Linear layer (HasBias). Shared by all three tilings.
    internal static void Store(ArrayView<float> c, ArrayView<float> bias, int cBase, int row, int col, in MatMulKernelArgs p, float v0, float v1, float v2, float v3)
    {
        if (row >= p.M) return;
        int at = cBase + row * p.N + col;
        if (col + 0 < p.N) c[at + 0] = Out(c, bias, at + 0, col + 0, p, v0);
        if (col + 1 < p.N) c[at + 1] = Out(c, bias, at + 1, col + 1, p, v1);
        if (col + 2 < p.N) c[at + 2] = Out(c, bias, at + 2, col + 2, p, v2);
        if (col + 3 < p.N) c[at + 3] = Out(c, bias, at + 3, col + 3, p, v3);
    }

    private static float Out(ArrayView<float> c, ArrayView<float> bias, int at, int col, in MatMulKernelArgs p, float v)
    {
        float y = p.Alpha * v;
        if (p.Accumulate != 0) y += c[at];
        if (p.HasBias != 0) y += bias[col];
        return y;
    }
}
