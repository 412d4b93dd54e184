using System.CommandLine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Ptx;
using ViTScratch.Training.Cli;

namespace ViTScratch.Training.Commands;

/// <summary>
/// `vit kernels ptx --arch sm_90 --out DIR`: compiles every GPU kernel to PTX, no GPU needed.
/// (The GPU kernel benchmarks against cuBLAS live in Benchmarks/: --kernels-bench, --lab.)
/// </summary>
public static class KernelsCommand
{
    public static Command Create()
    {
        var arch = Flags.Choice("--arch", "the GPU architecture to compile for", ["sm_80", "sm_90"], fallback: "sm_90");
        var outDir = Flags.Text("--out", "the directory to write the .ptx files into (required)", "DIR");
        var ptx = new Command("ptx", "write one .ptx file per GPU kernel (ILGPU's PTX backend, ISA 7.8); no GPU is needed. " +
                                     "Assemble one with: ptxas -arch=sm_90 -v DIR/<kernel>.ptx -o /dev/null") { arch, outDir };
        ptx.SetAction(r => WritePtx(r.GetValue(arch)!, r.Required(outDir, "kernels ptx", "the directory to write the .ptx files into"),
            r.InvocationConfiguration.Output));
        var command = new Command("kernels", "GPU kernel tools: 'vit kernels ptx' writes the PTX of every GPU kernel") { ptx };
        command.SetAction(int (_) => throw new ViTScratchException("vit kernels: expected the subcommand 'ptx', as in: vit kernels ptx --arch sm_90 --out DIR"));
        return command;
    }

    private static int WritePtx(string arch, string outDir, TextWriter stdout)
    {
        var files = PtxEmitter.WriteAll(arch, outDir);
        foreach (var f in files) stdout.WriteLine(f);
        stdout.WriteLine($"{files.Count} kernels compiled to PTX for {arch} in {Path.GetFullPath(outDir)}");
        return 0;
    }
}
