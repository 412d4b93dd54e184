using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Batched matmul C_b (=|+=) alpha op(A_b) op(B_b), op(A) [M, K], op(B) [K, N].
//
// One kernel runs every product: the double-buffered 64 x 64 kernel of MatMulPipelinedKernels.cs.
// The dispatcher below makes one decision per shape, split-K. The versions that led to it (the
// plain 64 x 64 kernel, the 128 x 128 kernel that lost everywhere) are in Benchmarks/Lab/, numbered
// MatMul01..03, each validated and timed against this one (docs/kernels.md, "Matmul").
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
// Shared memory: two A and two B slabs (double-buffered: MatMulPipelinedKernels.cs), 4 x 16 x 68
//   floats = 17 KB. Rows are padded by one Quad (4 floats): a row stride of 68 floats keeps the Quads 16-byte aligned for the vector loads and spreads the
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
// Precision: under MathPrecision.Tf32 / Bf16 the same tiles and split-K run on tensor cores
//   (MatMulTensorCoreKernels.cs: 64 x 64 tiles, K step 32, 128 threads); Fp32 runs the kernel above.
// docs/kernels.md "SASS analysis" shows the machine code this produces (tools/sass-report.sh).
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>? _matMul, _matMulTf32, _matMulBf16;

    public void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate, DeviceBuffer? bias = null)
    {
        if (shape.Batch == 0 || shape.M == 0 || shape.N == 0) return;
        // Without a bias the kernels still take a bias view (one float, never read): one kernel
        // signature for both.
        var biasView = bias is null ? Workspace("matmul-no-bias", 1) : V(bias);
        int hasBias = bias is null ? 0 : 1;
        const int tile = MatMulPipelinedKernels.Tile;   // MatMulTensorCoreKernels.Tile is the same
        int tileK = Precision == MathPrecision.Fp32 ? MatMulPipelinedKernels.TileK : MatMulTensorCoreKernels.TileK;
        int tilesX = (shape.N + tile - 1) / tile, tilesY = (shape.M + tile - 1) / tile;
        int splits = SplitKCount(shape, tilesX * tilesY);
        if (splits > 1)
        {
            // Split-K: slice z of K writes its product into partial[z] ([M, N] each), then the
            // column reduction sums the slices into C, applying `=` or `+=` there.
            int kChunk = (shape.K + splits - 1) / splits;
            kChunk = (kChunk + tileK - 1) / tileK * tileK;
            splits = (shape.K + kChunk - 1) / kChunk;
            int mn = shape.M * shape.N;
            var partial = Workspace("matmul-split-k", splits * mn);                       // partial: [splits, M, N]
            var splitArgs = new MatMulKernelArgs(shape.M, shape.N, shape.K, shape.TransA ? 1 : 0, shape.TransB ? 1 : 0,
                0, 0, mn, alpha, 0, kChunk, 0);
            LaunchMatMul(new Index3D(tilesX, tilesY, splits), V(a), V(b), partial, biasView, splitArgs);
            ReduceMid(partial, partial, 0, V(c), new BroadcastShape(1, splits, mn), 1f, accumulate);
            // Split-K is for single products (batch 1): the bias goes on after the slices are summed.
            if (bias is not null) AddBroadcast(c, bias, c, 1, shape.M, shape.N, 1f);
            return;
        }
        var args = new MatMulKernelArgs(shape.M, shape.N, shape.K, shape.TransA ? 1 : 0, shape.TransB ? 1 : 0,
            checked((int)shape.StrideA), checked((int)shape.StrideB), checked((int)shape.StrideC), alpha, accumulate ? 1 : 0, 0, hasBias);
        LaunchMatMul(new Index3D(tilesX, tilesY, shape.Batch), V(a), V(b), V(c), biasView, args);
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

    private void LaunchMatMul(Index3D grid, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs args)
    {
        switch (Precision)
        {
            case MathPrecision.Tf32:
                (_matMulTf32 ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>(MatMulTensorCoreKernels.Tf32))
                    (new KernelConfig(grid, new Index3D(MatMulTensorCoreKernels.GroupSize, 1, 1)), a, b, c, bias, args);
                break;
            case MathPrecision.Bf16:
                (_matMulBf16 ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>(MatMulTensorCoreKernels.Bf16))
                    (new KernelConfig(grid, new Index3D(MatMulTensorCoreKernels.GroupSize, 1, 1)), a, b, c, bias, args);
                break;
            default:
                (_matMul ??= Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs>(MatMulPipelinedKernels.MatMul))
                    (new KernelConfig(grid, new Index3D(GroupSize, 1, 1)), a, b, c, bias, args);
                break;
        }
    }
}

/// <summary>
/// MatMulShape as a kernel parameter (flags as ints, strides in floats). KChunk > 0 selects
/// split-K: grid z is then the K slice [z KChunk, (z + 1) KChunk), not the batch, and StrideC
/// separates the slices' partial products. HasBias = 1 adds bias[col] to every stored output.
/// </summary>
internal readonly record struct MatMulKernelArgs(int M, int N, int K, int TransA, int TransB, int StrideA, int StrideB, int StrideC, float Alpha, int Accumulate, int KChunk, int HasBias);

/// <summary>
/// Four consecutive floats of a shared slab row. ILGPU loads a struct of four floats at a
/// 16-byte aligned address with one vector instruction (ld.shared.v4.f32, SASS LDS.128).
/// </summary>
internal struct Quad
{
    public float X, Y, Z, W;
}
