using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Tensor-core matmul: C_b (=|+=) alpha op(A_b) op(B_b) (+ bias), op(A) [M, K], op(B) [K, N], with
// the inputs rounded to TF32 or BF16 and float32 accumulation (MathPrecision.Tf32 / Bf16). Same
// contract and arguments as the FP32 kernel (GpuKernels.MatMul.cs: batch, TransA/TransB, alpha,
// `=`/`+=`, bias in the store, ragged M/N/K, split-K through MatMulKernelArgs.KChunk); the two
// families differ only in how a fragment register is filled and in the mma instruction.
//
// Algorithm: each group computes one 64 x 64 tile of C with 4 warps in a 2 x 2 arrangement; each
// warp owns a 32 x 32 quarter = 2 (rows) x 4 (columns) mma tiles of 16 x 8 (Mma.cs), whose 32
// accumulators per lane live in PTX registers (MmaRegisters). The K axis is walked 32 at a time:
//
//   stage:   the group copies a 64 x 32 slab of op(A) and a 32 x 64 slab of op(B) from global
//            memory into shared memory, rounding each element once (RoundTf32 / RoundBf16); out-of-
//            range elements (ragged M, N, K, the end of a split-K slice) are stored as 0;
//   barrier;
//   compute: TF32: 4 steps of k = 8, BF16: 2 steps of k = 16. Per step a warp loads its 2 A
//            fragments (4 registers each) and 4 B fragments (2 registers each) from shared memory
//            by the fragment layout of Mma.cs (an MmaFragments) and issues 8 mma, one per 16 x 8
//            tile (MmaRegisters);
//   barrier.
//
// Shared memory, both slabs k-contiguous ("row" A and "col" B as mma wants them):
//   As[m][k], m = 0..63, and Bs[n][k], n = 0..63, row stride S floats, 2 x 64 x 40 x 4 B = 20 KB.
//   S is chosen so that a warp's fragment loads hit 32 different banks:
//   TF32 (S = 36): lane (g, t) reads As[g][t]: bank (36 g + t) mod 32 = 4 g + t, all different.
//   BF16 (S = 40): lane (g, t) reads the pair As[g][2t, 2t+1] as one 64-bit load; a half warp
//            (g = 0..3) covers 8-byte slots (20 g + t) mod 16 = 4 g + t, all different.
// Staging: 128 threads move 16 elements of each slab. When k is contiguous in memory (A not
//   transposed, B transposed) a warp reads 32 consecutive k of one row (coalesced) and writes them
//   to consecutive banks; otherwise it reads 32 consecutive rows at one k (coalesced) and the
//   shared stores are 8-way bank conflicted (S = 36/40): accepted in this first version, which
//   stages through registers without cp.async or ldmatrix (see docs/kernels.md, "Tensor cores").
// Rounding at staging: each element is rounded once per group instead of once per warp that reads
//   it; the fragment loads then only move bits (BF16: two rounded floats' top halves make one
//   bf16x2 register).
// Launch: grid (ceil(N / 64), ceil(M / 64), batch or K slices), group 128.
internal static class MatMulTensorCoreKernels
{
    public const int Tile = 64;        // the C tile of one group is Tile x Tile
    public const int TileK = 32;       // K advances TileK per stage
    public const int GroupSize = 128;  // 4 warps
    private const int Stride = 40;     // shared row stride in floats (TF32 uses 36 of the same space)
    private const int SlabFloats = Tile * Stride;

    /// <summary>The TF32 kernel: mma.m16n8k8 on tf32 inputs (10-bit mantissa), float32 accumulation.</summary>
    [GpuKernel]
    public static void Tf32(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs p) =>
        Run(a, b, c, bias, p, bf16: false);

    /// <summary>The BF16 kernel: mma.m16n8k16 on bfloat16 inputs (7-bit mantissa), float32 accumulation.</summary>
    [GpuKernel]
    public static void Bf16(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs p) =>
        Run(a, b, c, bias, p, bf16: true);

    private static void Run(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, MatMulKernelArgs p, bool bf16)
    {
        // Pairs so BF16 fragments load two k at once (ld.shared.v2); the same bytes as floats for staging.
        var As2 = SharedMemory.Allocate<Pair>(SlabFloats / 2);
        var Bs2 = SharedMemory.Allocate<Pair>(SlabFloats / 2);
        var As = As2.Cast<float>();
        var Bs = Bs2.Cast<float>();
        int stride = bf16 ? 40 : 36;
        int tid = Group.IdxX, lane = tid % 32, warp = tid / 32;
        int g = lane / 4, t = lane % 4;
        int warpRow = (warp / 2) * 32, warpCol = (warp % 2) * 32;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        int batch = p.KChunk > 0 ? 0 : Grid.IdxZ;
        int kBegin = p.KChunk > 0 ? Grid.IdxZ * p.KChunk : 0;
        int kEnd = p.KChunk > 0 ? Math.Min(p.K, kBegin + p.KChunk) : p.K;
        int aBase = batch * p.StrideA, bBase = batch * p.StrideB, cBase = Grid.IdxZ * p.StrideC;

        // Staging geometry (as in MatMulPipelinedKernels): thread element q = 0..15 of a slab is
        // (index i + q iStep, k + q kStep), k fastest across a warp when k is contiguous in memory.
        bool aKFast = p.TransA == 0, bKFast = p.TransB != 0;
        int iA = aKFast ? tid / 32 : tid % 64, kA = aKFast ? tid % 32 : tid / 64;
        int iStepA = aKFast ? 4 : 0, kStepA = aKFast ? 0 : 2;
        int iB = bKFast ? tid / 32 : tid % 64, kB = bKFast ? tid % 32 : tid / 64;
        int iStepB = bKFast ? 4 : 0, kStepB = bKFast ? 0 : 2;
        int rowStrideA = aKFast ? p.K : 1, kStrideA = aKFast ? 1 : p.M;
        int colStrideB = bKFast ? p.K : 1, kStrideB = bKFast ? 1 : p.N;

        MmaRegisters.Clear(out var acc);
        for (int k0 = kBegin; k0 < kEnd; k0 += TileK)
        {
            for (int q = 0; q < 16; q++)
            {
                int i = iA + q * iStepA, k = kA + q * kStepA;
                int row = row0 + i, kk = k0 + k;
                float v = row < p.M && kk < kEnd ? a[aBase + row * rowStrideA + kk * kStrideA] : 0f;
                As[i * stride + k] = bf16 ? Mma.RoundBf16(v) : Mma.RoundTf32(v);
            }
            for (int q = 0; q < 16; q++)
            {
                int i = iB + q * iStepB, k = kB + q * kStepB;
                int col = col0 + i, kk = k0 + k;
                float v = col < p.N && kk < kEnd ? b[bBase + kk * kStrideB + col * colStrideB] : 0f;
                Bs[i * stride + k] = bf16 ? Mma.RoundBf16(v) : Mma.RoundTf32(v);
            }
            Group.Barrier();
            if (bf16)
            {
                for (int ks = 0; ks < TileK; ks += 16)
                    StepBf16(As2, Bs2, ref acc, warpRow + g, warpCol + g, ks + 2 * t);
            }
            else
            {
                for (int ks = 0; ks < TileK; ks += 8)
                    StepTf32(As, Bs, ref acc, warpRow + g, warpCol + g, ks + t);
            }
            Group.Barrier();
        }

        MmaRegisters.Collect(ref acc);
        // Tile mi * 4 + ni covers rows warpRow + 16 mi + (g, g + 8), columns warpCol + 8 ni + (2t, 2t + 1).
        int outRow = row0 + warpRow + g, outCol = col0 + warpCol + 2 * t;
        StoreTile(0, acc, c, bias, cBase, outRow, outCol, p);
        StoreTile(1, acc, c, bias, cBase, outRow, outCol + 8, p);
        StoreTile(2, acc, c, bias, cBase, outRow, outCol + 16, p);
        StoreTile(3, acc, c, bias, cBase, outRow, outCol + 24, p);
        StoreTile(4, acc, c, bias, cBase, outRow + 16, outCol, p);
        StoreTile(5, acc, c, bias, cBase, outRow + 16, outCol + 8, p);
        StoreTile(6, acc, c, bias, cBase, outRow + 16, outCol + 16, p);
        StoreTile(7, acc, c, bias, cBase, outRow + 16, outCol + 24, p);
    }

    // One k = 8 step of the warp's 2 x 4 tiles. Lane (g, t) holds A (row, k) = (g (+8), t (+4)) and
    // B (k, n) = (t (+4), g) of each tile: `row` = the warp's first row + g, `n` likewise, `k` = step + t.
    private static void StepTf32(ArrayView<float> As, ArrayView<float> Bs, ref MmaTiles8 acc, int row, int n, int k)
    {
        const int S = 36;
        var f = new MmaFragments
        {
            A00 = Bits(As[row * S + k]), A01 = Bits(As[(row + 8) * S + k]), A02 = Bits(As[row * S + k + 4]), A03 = Bits(As[(row + 8) * S + k + 4]),
            A10 = Bits(As[(row + 16) * S + k]), A11 = Bits(As[(row + 24) * S + k]), A12 = Bits(As[(row + 16) * S + k + 4]), A13 = Bits(As[(row + 24) * S + k + 4]),
            B00 = Bits(Bs[n * S + k]), B01 = Bits(Bs[n * S + k + 4]),
            B10 = Bits(Bs[(n + 8) * S + k]), B11 = Bits(Bs[(n + 8) * S + k + 4]),
            B20 = Bits(Bs[(n + 16) * S + k]), B21 = Bits(Bs[(n + 16) * S + k + 4]),
            B30 = Bits(Bs[(n + 24) * S + k]), B31 = Bits(Bs[(n + 24) * S + k + 4]),
        };
        MmaRegisters.Tf32(ref acc, f);
    }

    // One k = 16 step. Lane (g, t) holds the pairs A (g (+8), 2t (+8) .. +1) and B (2t (+8) .. +1, g):
    // `k` = step + 2t, each register one 64-bit shared load (Pair index = float index / 2).
    private static void StepBf16(ArrayView<Pair> As, ArrayView<Pair> Bs, ref MmaTiles8 acc, int row, int n, int k)
    {
        const int P = 20;   // row stride in Pairs (40 floats)
        int h = k / 2;
        var f = new MmaFragments
        {
            A00 = Pack(As[row * P + h]), A01 = Pack(As[(row + 8) * P + h]), A02 = Pack(As[row * P + h + 4]), A03 = Pack(As[(row + 8) * P + h + 4]),
            A10 = Pack(As[(row + 16) * P + h]), A11 = Pack(As[(row + 24) * P + h]), A12 = Pack(As[(row + 16) * P + h + 4]), A13 = Pack(As[(row + 24) * P + h + 4]),
            B00 = Pack(Bs[n * P + h]), B01 = Pack(Bs[n * P + h + 4]),
            B10 = Pack(Bs[(n + 8) * P + h]), B11 = Pack(Bs[(n + 8) * P + h + 4]),
            B20 = Pack(Bs[(n + 16) * P + h]), B21 = Pack(Bs[(n + 16) * P + h + 4]),
            B30 = Pack(Bs[(n + 24) * P + h]), B31 = Pack(Bs[(n + 24) * P + h + 4]),
        };
        MmaRegisters.Bf16(ref acc, f);
    }

    private static uint Bits(float x) => Interop.FloatAsInt(x);

    // Two bf16-rounded floats (their low 16 bits are 0) as one bf16x2 register, X (lower k) low.
    private static uint Pack(Pair v) => (Interop.FloatAsInt(v.X) >> 16) | (Interop.FloatAsInt(v.Y) & 0xFFFF0000u);

    // The tile's two rows of two columns: (row, col .. col + 1) = c0, c1 and (row + 8, ..) = c2, c3.
    private static void StoreTile(int tile, in MmaTiles8 acc, ArrayView<float> c, ArrayView<float> bias, int cBase, int row, int col, in MatMulKernelArgs p)
    {
        MmaRegisters.Read(tile, acc, out float c0, out float c1, out float c2, out float c3);
        Store2(c, bias, cBase, row, col, p, c0, c1);
        Store2(c, bias, cBase, row + 8, col, p, c2, c3);
    }

    private static void Store2(ArrayView<float> c, ArrayView<float> bias, int cBase, int row, int col, in MatMulKernelArgs p, float v0, float v1)
    {
        if (row >= p.M) return;
        int at = cBase + row * p.N + col;
        if (col < p.N) c[at] = MatMulPipelinedKernels.Out(c, bias, at, col, p, v0);
        if (col + 1 < p.N) c[at + 1] = MatMulPipelinedKernels.Out(c, bias, at + 1, col + 1, p, v1);
    }
}

/// <summary>Two consecutive floats of a shared row: one 8-byte load (ld.shared.v2.f32, SASS LDS.64).</summary>
internal struct Pair
{
    public float X, Y;
}
