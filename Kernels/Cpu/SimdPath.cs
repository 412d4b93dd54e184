using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// The one place every CPU kernel takes its vector width from: the GEMM and attention
/// micro-kernels, the row loops of Simd.cs, GELU, dropout, layernorm and the optimizers. Vector512
/// needs AVX-512 (32 zmm registers: the 8 x 32 matmul tile); Vector256 is the AVX2 path (16 ymm
/// registers: the 6 x 16 tile). A backend holds one (<see cref="CpuKernels.SimdPath"/>, the
/// detected width by default) and hands it to each kernel call, so tests can run both widths
/// side by side in one process: on an AVX-512 host both natively; elsewhere .NET emulates the
/// unaccelerated Vector512 (slowly, but with the same results).
/// </summary>
internal enum SimdPath
{
    Vector256,
    Vector512,
}

internal static class SimdPaths
{
    public static SimdPath Detected => Vector512.IsHardwareAccelerated ? SimdPath.Vector512 : SimdPath.Vector256;
}
