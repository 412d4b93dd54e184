using ViTScratch.Kernels;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The backend matrix drops "cuda" silently where no GPU is present; that is right on CI and
/// wrong on a GPU machine, where a driver or ILGPU failure would make the whole CUDA column
/// vanish and the run look green. tools/device/gpu-check.sh sets VIT_REQUIRE_CUDA=1, and then
/// this test fails with the reason the CUDA probe gave.
/// </summary>
public sealed class CudaPresenceTests
{
    [Fact]
    public void CudaIsAvailableWhenTheRunRequiresIt()
    {
        if (Environment.GetEnvironmentVariable("VIT_REQUIRE_CUDA") != "1") return;
        Assert.True(BackendFactory.HasCuda, $"VIT_REQUIRE_CUDA=1 but the cuda backend is unavailable: {BackendFactory.CudaUnavailableReason}");
        using var k = BackendFactory.Create("cuda");
        Assert.Equal("cuda", k.Name);
    }
}
