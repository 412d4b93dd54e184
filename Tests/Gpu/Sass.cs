using System.Diagnostics;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// SASS of a PTX file without a GPU: ptxas assembles it into a cubin, cuobjdump -sass disassembles
/// that. cuobjdump is found next to ptxas (.ci/install-ptxas.sh installs both), in $CUOBJDUMP or on PATH.
/// </summary>
public static class Sass
{
    public static string Disassemble(string ptxFile, string cubinFile, string arch)
    {
        Run(Ptxas.Path!, ["-arch=" + arch, "-o", cubinFile, ptxFile]);
        return Run(CuobjdumpPath(), ["-sass", cubinFile]);
    }

    private static string CuobjdumpPath()
    {
        var env = Environment.GetEnvironmentVariable("CUOBJDUMP");
        if (!string.IsNullOrEmpty(env)) return env;
        var beside = Path.Combine(Path.GetDirectoryName(Ptxas.Path!)!, "cuobjdump");
        return File.Exists(beside) ? beside : "cuobjdump";
    }

    private static string Run(string tool, string[] args)
    {
        var psi = new ProcessStartInfo(tool, args) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var proc = Process.Start(psi)!;
        var stdout = proc.StandardOutput.ReadToEndAsync();
        string stderr = proc.StandardError.ReadToEnd();
        proc.WaitForExit();
        if (proc.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)}: exit {proc.ExitCode}: {stderr}");
        return stdout.Result;
    }
}
