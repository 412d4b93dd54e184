using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The backend matrix builds its rows from the backends available on the machine, so a backend
/// that fails to start makes its whole column vanish without a failure. These tests make the
/// columns' presence visible: the cuda column is a skip (allowed on CI machines without a GPU,
/// a failure with VIT_REQUIRE_CUDA=1, which tools/device/gpu-check.sh sets), and under CI the cpu
/// and ilgpu-cpu columns must both be there.
/// </summary>
public sealed class BackendPresenceTests
{
    [CudaFact]
    public void CudaColumnRuns()
    {
        Assert.True(BackendFactory.HasCuda, $"VIT_REQUIRE_CUDA=1 but the cuda backend is unavailable: {BackendFactory.CudaUnavailableReason}");
        Assert.Contains("cuda", BackendMatrix.Available);
        using var k = BackendFactory.Create("cuda");
        Assert.Equal("cuda", k.Name);
    }

    [FullMatrixFact]
    public void CpuAndSimulatorColumnsRun()
    {
        Assert.Contains("cpu", BackendMatrix.Available);
        Assert.True(BackendMatrix.Available.Contains("ilgpu-cpu"),
            "the ilgpu-cpu column is missing (VIT_TEST_BACKENDS set, or ILGPU's CPU accelerator failed to start): the GPU kernels would go untested");
    }

    [Fact]
    public void Factory_names_and_errors()
    {
        Assert.True(BackendFactory.IsAvailable("ilgpu-cpu"));
        using var k = BackendFactory.Create("ilgpu-cpu");
        Assert.Equal("ilgpu-cpu", k.Name);
        if (!BackendFactory.IsAvailable("cuda"))
        {
            var e = Assert.Throws<ViTScratchException>(() => BackendFactory.Create("cuda"));
            Assert.Contains("no CUDA device", e.Message);
        }
        // A buffer of another backend is refused, not misread.
        Assert.Throws<ArgumentException>(() => k.MatMul(new global::ViTScratch.Kernels.Cpu.CpuBuffer(new float[1], 0, 1), k.Allocate(1), k.Allocate(1), MatMulShape.Single(1, 1, 1), 1f, false));
    }
}
