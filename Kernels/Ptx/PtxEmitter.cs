using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Kernels.Ptx;

/// <summary>
/// Compiles every GPU kernel of <see cref="GpuKernelRegistry"/> to PTX for a chosen architecture
/// without a GPU: ILGPU's PTX backend runs on the host, only loading the PTX needs a driver. Used
/// by `vit kernels ptx`, by the ptxas assembly test and by tools/kernel-report.sh.
/// PTX ISA 7.8 is targeted because it is the newest that CUDA 11.8's ptxas (the one .ci/install-
/// ptxas.sh installs) accepts, and every driver since CUDA 11.8 loads it.
/// </summary>
internal static class PtxEmitter
{
    /// <summary>Architectures with a name the tools accept ("sm_80", "sm_90", ...).</summary>
    public static CudaArchitecture ParseArch(string arch)
    {
        var s = arch.Trim().ToLowerInvariant();
        if (s.StartsWith("sm_") && int.TryParse(s[3..], out int v) && v >= 10)
            return new CudaArchitecture(v / 10, v % 10);
        throw new ViTScratchException($"unknown GPU architecture '{arch}'; write it as sm_80, sm_86, sm_90, ...");
    }

    /// <summary>(kernel name, PTX text) for every registered kernel, in registry order.</summary>
    public static IReadOnlyList<(string Name, string Ptx)> CompileAll(string arch)
    {
        var architecture = ParseArch(arch);
        using var context = Context.Create(b => GpuKernels.Configure(b));
        var backend = new PTXBackend(context, new CudaCapabilityContext(architecture), architecture, CudaInstructionSet.ISA_78, null);
        var result = new List<(string, string)>();
        foreach (var kernel in GpuKernelRegistry.All)
            result.Add((GpuKernelRegistry.Name(kernel), Compile(backend, kernel)));
        return result;
    }

    /// <summary>The PTX of one kernel method.</summary>
    public static string Compile(PTXBackend backend, MethodInfo kernel)
    {
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        var compiled = backend.Compile(entry, KernelSpecialization.Empty);
        return ((PTXCompiledKernel)compiled).PTXAssembly;
    }

    /// <summary>Writes one NAME.ptx per kernel into <paramref name="outDir"/>; returns the file paths.</summary>
    public static IReadOnlyList<string> WriteAll(string arch, string outDir)
    {
        Directory.CreateDirectory(outDir);
        var paths = new List<string>();
        foreach (var (name, ptx) in CompileAll(arch))
        {
            var path = Path.Combine(outDir, name + ".ptx");
            File.WriteAllText(path, ptx);
            paths.Add(path);
        }
        return paths;
    }
}
