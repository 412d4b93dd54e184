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
    public const string Help = """
        vit kernels ptx --arch sm_80|sm_90 --out DIR
          writes one .ptx file per GPU kernel (ILGPU's PTX backend, ISA 7.8); no GPU is needed.
          Assemble one with: ptxas -arch=sm_90 -v DIR/<kernel>.ptx -o /dev/null
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new ArgParser("kernels", args);
        string sub = a.Positional.Count == 1 ? a.Positional[0] : "";
        if (sub == "ptx")
        {
            string arch = a.Choice("arch", "sm_90", "sm_80", "sm_90");
            string outDir = a.Required("out", "the directory to write the .ptx files into");
            a.RejectUnknown(maxPositional: 1);
            var files = PtxEmitter.WriteAll(arch, outDir);
            foreach (var f in files) stdout.WriteLine(f);
            stdout.WriteLine($"{files.Count} kernels compiled to PTX for {arch} in {Path.GetFullPath(outDir)}");
            return 0;
        }
        throw new ViTScratchException("vit kernels: expected the subcommand 'ptx', as in: vit kernels ptx --arch sm_90 --out DIR");
    }
}
