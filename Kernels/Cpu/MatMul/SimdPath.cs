using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu.MatMul;

/// <summary>
/// Which register-blocked micro-kernel the CPU matmul and attention use. Vector512 needs AVX-512
/// (32 zmm registers: an 8 x 32 tile); Vector256 is the AVX2 fallback (16 ymm registers: a 6 x 16
/// tile). Both are correct on any CPU (.NET emulates unaccelerated vector widths, slowly), which is
/// how the tests cover the path the test machine does not run natively.
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
