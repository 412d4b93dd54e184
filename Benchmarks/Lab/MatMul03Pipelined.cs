using ILGPU;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Benchmarks.Lab;

// MatMul03: MatMul01 with its staging double-buffered: the loads of slab t + 1 are in flight while
// slab t's 16 rank-1 updates run, one barrier per step instead of two. This is the mainline kernel,
// Kernels/Gpu/MatMulPipelinedKernels.cs, referenced here rather than copied.
// Measured on an H100 (docs/log/2026-performance-log.md, H100 run 5): 1.1-1.5x faster than MatMul01
// at every shape timed, 4096³ 5.11 against 7.56 ms (35% -> 52% of cuBLAS SGEMM); 71 registers and
// 17 KB shared on sm_90, 24 warps per SM instead of 48.
internal static class MatMul03Pipelined
{
    public const int Tile = MatMulPipelinedKernels.Tile;

    public static readonly Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, MatMulKernelArgs> Kernel =
        MatMulPipelinedKernels.MatMul;
}
