using ViTScratch.Kernels.Gpu;
using ViTScratch.Kernels.Ptx;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// Every registered GPU kernel compiles to PTX and assembles with NVIDIA's ptxas for sm_80
/// (A100) and sm_90 (H100), with no register spills. This is what catches a kernel that ILGPU
/// accepts but the GPU toolchain rejects, or one whose registers overflow to local memory, on a
/// machine that has no GPU.
/// </summary>
public sealed class PtxAssemblyTests
{
    [Fact]
    public void Registry_holds_every_kernel_family()
    {
        var names = GpuKernelRegistry.All.Select(GpuKernelRegistry.Name).ToHashSet();
        foreach (var expected in new[]
                 {
                     "ElementwiseKernels.Fill", "ElementwiseKernels.CopyStrided", "ActivationKernels.GeluForward",
                     "ReduceKernels.SumColumns", "SoftmaxKernels.Forward", "SoftmaxKernels.CountCorrect",
                     "LayerNormKernels.ParamPartials", "OptimizerKernels.AdamW", "MatMulPipelinedKernels.MatMul",
                     "AttentionLongKernels.Forward", "AttentionLongKernels.BackwardDkDv",
                 })
            Assert.Contains(expected, names);
    }

    [PtxasTheory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void Every_kernel_assembles_without_spills(string arch)
    {
        Assert.True(Ptxas.Path is not null, Ptxas.InstallHint);
        var dir = Path.Combine(Path.GetTempPath(), $"vitscratch-ptx-{arch}-{Environment.ProcessId}");
        try
        {
            var files = PtxEmitter.WriteAll(arch, dir);
            Assert.Equal(GpuKernelRegistry.All.Count, files.Count);
            var failures = new List<string>();
            foreach (var file in files)
            {
                var r = Ptxas.Assemble(file, arch);
                string name = Path.GetFileNameWithoutExtension(file);
                if (r.ExitCode != 0) failures.Add($"{name}: ptxas exit {r.ExitCode}: {r.Output}");
                else if (r.SpillStores != 0 || r.SpillLoads != 0) failures.Add($"{name}: {r.SpillStores} B spill stores, {r.SpillLoads} B spill loads");
                else if (!r.Output.Contains("Used ")) failures.Add($"{name}: no resource line in ptxas -v output: {r.Output}");
            }
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
