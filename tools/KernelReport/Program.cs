// Resource table of the GPU kernels: for each architecture given (default sm_80 sm_90), compiles
// every registered kernel to PTX with PtxEmitter, assembles it with `ptxas -v`, and prints
// registers, static shared memory, stack frame and spill bytes per kernel as markdown.
// Usage: dotnet run --project tools/KernelReport -c Release -- [--ptxas PATH] [sm_80 sm_90 ...]
using System.Diagnostics;
using System.Text.RegularExpressions;
using ViTScratch.Kernels.Ptx;

var archs = new List<string>();
string ptxas = Environment.GetEnvironmentVariable("PTXAS") ?? "ptxas";
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--ptxas") ptxas = args[++i];
    else archs.Add(args[i]);
}
if (archs.Count == 0) archs.AddRange(["sm_80", "sm_90"]);

foreach (var arch in archs)
{
    var dir = Path.Combine(Path.GetTempPath(), $"vitscratch-kernel-report-{arch}-{Environment.ProcessId}");
    var files = PtxEmitter.WriteAll(arch, dir);
    Console.WriteLine($"### {arch} (PTX ISA 7.8, {RunPtxas(ptxas, "--version").Split('\n').LastOrDefault(l => l.Contains("release"))?.Trim()})");
    Console.WriteLine();
    Console.WriteLine("| kernel | registers | shared memory (B) | stack (B) | spill stores (B) | spill loads (B) |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|");
    foreach (var file in files)
    {
        string output = RunPtxas(ptxas, $"-arch={arch} -v -o /dev/null {file}");
        int N(string pattern) => Regex.Matches(output, pattern).Sum(m => int.Parse(m.Groups[1].Value));
        Console.WriteLine($"| {Path.GetFileNameWithoutExtension(file)} | {N(@"Used (\d+) registers")} | {N(@"(\d+) bytes smem")} | " +
                          $"{N(@"(\d+) bytes stack frame")} | {N(@"(\d+) bytes spill stores")} | {N(@"(\d+) bytes spill loads")} |");
    }
    Console.WriteLine();
    Directory.Delete(dir, recursive: true);
}

static string RunPtxas(string ptxas, string arguments)
{
    var psi = new ProcessStartInfo(ptxas, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
    using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {ptxas}");
    var stdout = p.StandardOutput.ReadToEndAsync();
    string stderr = p.StandardError.ReadToEnd();
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"ptxas {arguments} failed ({p.ExitCode}):\n{stderr}");
    return stdout.Result + stderr;
}
