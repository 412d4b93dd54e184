using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Tests.TestSupport;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// .ci/run runs the CPU-kernel classes at the host's widest SIMD width, then on an AVX-512 host a
/// second time with DOTNET_EnableAVX512=0 (.NET 10 ignores the older DOTNET_EnableAVX512F) and
/// VIT_EXPECT_SIMD=256. This test checks that the switch took effect, so the second pass cannot
/// quietly test the Vector512 paths twice (a misspelt variable, a runtime that ignores it).
/// </summary>
public sealed class SimdWidthTests
{
    [Fact]
    public void TheVectorWidthIsTheOneThePassExpects()
    {
        string? expected = Environment.GetEnvironmentVariable("VIT_EXPECT_SIMD");
        int width = Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : 128;
        if (expected is { Length: > 0 })
            Assert.Equal(int.Parse(expected), width);
        // Either way the JIT may only use 512-bit vectors where the processor has AVX-512 (it may
        // decline them where it does, on processors that slow down on 512-bit instructions).
        Assert.True(!Vector512.IsHardwareAccelerated || Avx512F.IsSupported);
        // And the kernels' default width follows it: a CpuKernels made without a path runs
        // Vector512 exactly where 512-bit vectors are accelerated, so the second pass really runs
        // the Vector256 kernels (a SimdPaths.Detected that always said Vector512 survived
        // mutation testing on an AVX-512 host; this pass kills it).
        if (width >= 256)
            Assert.Equal(width == 512 ? SimdPath.Vector512 : SimdPath.Vector256, SimdPaths.Detected);
        using var kernels = new CpuKernels();
        Assert.Equal(SimdPaths.Detected, kernels.SimdPath);
    }

    // The kernel matrix's second CPU row: on an AVX-512 host "cpu" runs the Vector512 kernels and
    // "cpu-256" the Vector256 ones, in the same process, so neither width goes untested there.
    [Fact]
    public void TheMatrixRunsBothCpuWidthsWhereTheHostHasAvx512()
    {
        bool cpu = BackendMatrix.Available.Contains("cpu");
        bool wide = SimdPaths.Detected == SimdPath.Vector512;
        Assert.Equal(cpu && wide, BackendMatrix.RowBackends.Contains(BackendMatrix.Cpu256));
        using var k = (CpuKernels)BackendMatrix.Create(BackendMatrix.Cpu256);
        Assert.Equal(SimdPath.Vector256, k.SimdPath);
    }
}
