namespace ViTScratch.Training.Data;

/// <summary>One progress report of a download: bytes so far and the total when the server sent it.</summary>
public readonly record struct DownloadProgress(string FileName, long BytesDone, long? TotalBytes, bool Completed);

/// <summary>
/// Renders download progress as one self-overwriting line on stderr ("\r" without newline),
/// at most ~5 times a second, and a final newline when done. Reports arrive synchronously from
/// the downloading thread (unlike System.Progress&lt;T&gt;, which posts to a sync context).
/// </summary>
public sealed class ConsoleDownloadProgress : IProgress<DownloadProgress>
{
    private readonly TextWriter _writer;
    private long _lastTicks;

    /// <summary>Progress lines on <paramref name="writer"/> (standard error by default).</summary>
    public ConsoleDownloadProgress(TextWriter? writer = null) => _writer = writer ?? Console.Error;

    /// <summary>Prints a line for this progress report.</summary>
    public void Report(DownloadProgress p)
    {
        long now = Environment.TickCount64;
        if (!p.Completed && now - _lastTicks < 200) return;
        _lastTicks = now;
        string done = $"{p.BytesDone / 1048576.0:F1}";
        string line = p.TotalBytes is long total && total > 0
            ? $"\rdownloading {p.FileName}: {done} / {total / 1048576.0:F1} MiB ({100.0 * p.BytesDone / total:F0}%)"
            : $"\rdownloading {p.FileName}: {done} MiB";
        _writer.Write(p.Completed ? line + " done\n" : line);
        _writer.Flush();
    }
}
