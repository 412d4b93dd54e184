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
                     "MatMulTensorCoreKernels.Tf32", "MatMulTensorCoreKernels.Bf16",
                     "FusedKernels.GeluBiasBackward", "FusedKernels.AddLayerNormForward",
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

    // The tensor-core kernels by name with the SASS instruction their mma must become; any other
    // kernel whose PTX holds an mma.sync is held to "some HMMA" as well.
    private static readonly Dictionary<string, string> TensorCoreKernels = new()
    {
        ["MatMulTensorCoreKernels.Tf32"] = "HMMA.1688.F32.TF32",
        ["MatMulTensorCoreKernels.Bf16"] = "HMMA.16816.F32.BF16",
    };

    /// <summary>
    /// A tensor-core kernel really runs on tensor cores: its PTX holds mma.sync and its SASS
    /// (cuobjdump -sass of the ptxas cubin) holds the HMMA, and its accumulators stay in registers:
    /// at most the 8-byte frame of MmaRegisters.Collect, no local loads or stores beyond it.
    /// </summary>
    [PtxasTheory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void Tensor_core_kernels_compile_to_HMMA_without_local_memory(string arch)
    {
        Assert.True(Ptxas.Path is not null, Ptxas.InstallHint);
        var dir = Path.Combine(Path.GetTempPath(), $"vitscratch-sass-{arch}-{Environment.ProcessId}");
        try
        {
            var files = PtxEmitter.WriteAll(arch, dir);
            var failures = new List<string>();
            int checkedKernels = 0;
            foreach (var file in files)
            {
                string name = Path.GetFileNameWithoutExtension(file);
                bool named = TensorCoreKernels.TryGetValue(name, out var hmma);
                if (!named && !File.ReadAllText(file).Contains("mma.sync")) continue;
                checkedKernels++;
                string sass = Sass.Disassemble(file, Path.ChangeExtension(file, ".cubin"), arch);
                var r = Ptxas.Assemble(file, arch);
                int count = CountOf(sass, hmma ?? "HMMA");
                if (count == 0) failures.Add($"{name}: no {hmma ?? "HMMA"} in its SASS");
                if (named && r.StackBytes > 8) failures.Add($"{name}: {r.StackBytes} B stack frame (accumulators in local memory?)");
                int local = CountOf(sass, "LDL") + CountOf(sass, "STL");
                if (named && local > 2) failures.Add($"{name}: {local} local-memory loads/stores in its SASS");
            }
            Assert.True(checkedKernels >= TensorCoreKernels.Count, $"only {checkedKernels} tensor-core kernels found");
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
