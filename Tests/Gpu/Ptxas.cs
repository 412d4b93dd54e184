using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// Locates NVIDIA's ptxas: $PTXAS, then .tools/ptxas in the repository (installed by
/// .ci/install-ptxas.sh), then PATH.
/// </summary>
public static partial class Ptxas
{
    public static string? Path { get; } = Find();

    public static bool IsCi => ViTScratch.Tests.TestSupport.SkipReasons.IsCi;

    public const string InstallHint = "ptxas not found: run .ci/install-ptxas.sh (or set PTXAS to a ptxas binary)";

    private static string? Find()
    {
        var env = Environment.GetEnvironmentVariable("PTXAS");
        if (!string.IsNullOrEmpty(env)) return File.Exists(env) ? env : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, ".tools", "ptxas");
            if (File.Exists(candidate)) return candidate;
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "ViTScratch.sln"))) break;
        }
        foreach (var p in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator))
        {
            var candidate = System.IO.Path.Combine(p, "ptxas");
            if (p.Length > 0 && File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Resources of one assembled kernel, parsed from `ptxas -v`.</summary>
    public sealed record Report(int ExitCode, string Output, int Registers, int SharedBytes, int SpillStores, int SpillLoads, int StackBytes);

    public static Report Assemble(string ptxFile, string arch)
    {
        var psi = new ProcessStartInfo(Path!, ["-arch=" + arch, "-v", "-o", "/dev/null", ptxFile])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        using var proc = Process.Start(psi)!;
        var stdout = proc.StandardOutput.ReadToEndAsync();
        var stderr = proc.StandardError.ReadToEnd();
        proc.WaitForExit();
        string output = stdout.Result + stderr;
        return new Report(proc.ExitCode, output,
            Sum(RegistersRe(), output), Sum(SharedRe(), output),
            Sum(SpillStoresRe(), output), Sum(SpillLoadsRe(), output), Sum(StackRe(), output));
    }

    private static int Sum(Regex re, string text) => re.Matches(text).Sum(m => int.Parse(m.Groups[1].Value));

    [GeneratedRegex(@"Used (\d+) registers")] private static partial Regex RegistersRe();
    [GeneratedRegex(@"(\d+) bytes smem")] private static partial Regex SharedRe();
    [GeneratedRegex(@"(\d+) bytes spill stores")] private static partial Regex SpillStoresRe();
    [GeneratedRegex(@"(\d+) bytes spill loads")] private static partial Regex SpillLoadsRe();
    [GeneratedRegex(@"(\d+) bytes stack frame")] private static partial Regex StackRe();
}

/// <summary>
/// A fact that needs ptxas. Without ptxas it is reported as skipped with the install hint,
/// except under CI=true, where it runs and fails: CI must never silently skip the PTX check.
/// </summary>
public sealed class PtxasFactAttribute : FactAttribute
{
    public PtxasFactAttribute()
    {
        if (Ptxas.Path is null && !Ptxas.IsCi) Skip = Ptxas.InstallHint;
    }
}

public sealed class PtxasTheoryAttribute : TheoryAttribute
{
    public PtxasTheoryAttribute()
    {
        if (Ptxas.Path is null && !Ptxas.IsCi) Skip = Ptxas.InstallHint;
    }
}
