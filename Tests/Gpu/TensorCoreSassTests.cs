using ViTScratch.Kernels.Gpu;
using ViTScratch.Kernels.Ptx;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// Every registered kernel whose PTX holds an mma.sync reaches the tensor cores: ptxas assembles it
/// for sm_80 and sm_90 with no spills, and its SASS (cuobjdump) has at least as many HMMA as the PTX
/// has mma.sync (ptxas drops none). ptxas may unroll a loop around an mma (the tensor-core matmul's
/// K step of 32 becomes 4 copies of its 8 mma), so more HMMA than mma.sync is allowed in general;
/// the attention kernels, whose mma loops ptxas leaves rolled, are held to exactly one HMMA per
/// mma.sync. They must be among them, so a refactor that silently routes them around Mma.cs fails
/// here, not only on a GPU.
/// (PtxAssemblyTests checks all kernels for spills; this adds the HMMA.)
/// </summary>
public sealed class TensorCoreSassTests
{
    private static readonly string[] AttentionKernels =
        ["AttentionTensorCoreKernels.Forward", "AttentionTensorCoreKernels.BackwardDq", "AttentionTensorCoreKernels.BackwardDkDv"];

    [PtxasTheory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void Tensor_core_kernels_assemble_to_hmma(string arch)
    {
        Assert.True(Ptxas.Path is not null, Ptxas.InstallHint);
        var dir = Directory.CreateTempSubdirectory("vitscratch-hmma-");
        try
        {
            var tensorCore = new List<string>();
            var failures = new List<string>();
            foreach (var (name, ptx) in PtxEmitter.CompileAll(arch))
            {
                int mma = Count(ptx, "mma.sync.aligned.");
                if (mma == 0) continue;
                tensorCore.Add(name);
                string file = Path.Combine(dir.FullName, name + ".ptx"), cubin = Path.Combine(dir.FullName, name + ".cubin");
                File.WriteAllText(file, ptx);
                var r = Ptxas.Assemble(file, arch);
                if (r.ExitCode != 0 || r.SpillStores != 0 || r.SpillLoads != 0)
                {
                    failures.Add($"{name}: ptxas exit {r.ExitCode}, {r.SpillStores} B spill stores, {r.SpillLoads} B spill loads: {r.Output}");
                    continue;
                }
                int hmma = Count(Sass.Disassemble(file, cubin, arch), "HMMA.");
                bool exact = AttentionKernels.Contains(name);
                if (exact ? hmma != mma : hmma < mma)
                    failures.Add($"{name}: {mma} mma.sync in the PTX but {hmma} HMMA in the SASS ({(exact ? "exactly one each" : "at least one each")} expected)");
            }
            Assert.True(failures.Count == 0, string.Join("\n", failures));
            foreach (var k in AttentionKernels) Assert.Contains(k, tensorCore);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static int Count(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
