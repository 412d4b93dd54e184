using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace ViTScratch.Tests.Training;

/// <summary>
/// The `vit` runner as a separate process (the vit.dll built beside the tests), for what only a
/// real process shows: its working directory, its exit code, and how it answers POSIX signals.
/// </summary>
internal sealed class VitProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _out = new(), _err = new();
    private readonly List<(string Pattern, ManualResetEventSlim Seen)> _waits = new();

    private VitProcess(string workingDirectory, string[] args)
    {
        var start = new ProcessStartInfo(SigIntIgnored ? "python3" : "dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (SigIntIgnored)
        {
            // A process started in the background by a non-interactive shell (`cmd &` in a script)
            // ignores SIGINT, and its children inherit that: vit would never see the test's Ctrl+C.
            // Restore the default disposition and exec dotnet in place (same pid), as a terminal would have it.
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])");
            start.ArgumentList.Add("dotnet");
        }
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "vit.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Append(_out, e.Data);
        _process.ErrorDataReceived += (_, e) => Append(_err, e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public static VitProcess Start(string workingDirectory, params string[] args) => new(workingDirectory, args);

    /// <summary>Whether this process ignores SIGINT (bit 1 of SigIgn in /proc/self/status), which children inherit.</summary>
    private static bool SigIntIgnored { get; } = File.Exists("/proc/self/status") && File.ReadLines("/proc/self/status")
        .FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) is { } line
        && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << 1)) != 0;

    /// <summary>Runs `vit args` to the end and returns its exit code and output.</summary>
    public static (int Code, string Out, string Err) Run(string workingDirectory, params string[] args)
    {
        using var p = Start(workingDirectory, args);
        return (p.WaitForExit(TimeSpan.FromMinutes(2)), p.Out, p.Err);
    }

    public int Id => _process.Id;
    public string Out { get { lock (_out) return _out.ToString(); } }
    public string Err { get { lock (_err) return _err.ToString(); } }

    /// <summary>Waits until a line of stdout contains <paramref name="text"/>; false on timeout or exit.</summary>
    public bool WaitForOutput(string text, TimeSpan timeout)
    {
        var seen = new ManualResetEventSlim();
        lock (_out)
        {
            if (_out.ToString().Contains(text, StringComparison.Ordinal)) return true;
            _waits.Add((text, seen));
        }
        return seen.Wait(timeout);
    }

    public void Signal(int signal)
    {
        if (kill(_process.Id, signal) != 0) throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public const int SIGINT = 2, SIGTERM = 15;

    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"vit did not exit within {timeout}; stdout so far:\n{Out}\nstderr:\n{Err}");
        }
        _process.WaitForExit(); // drains the redirected output
        return _process.ExitCode;
    }

    private void Append(StringBuilder sb, string? line)
    {
        if (line is null) return;
        lock (sb)
        {
            sb.AppendLine(line);
            if (sb != _out) return;
            foreach (var (pattern, seen) in _waits)
                if (line.Contains(pattern, StringComparison.Ordinal)) seen.Set();
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
