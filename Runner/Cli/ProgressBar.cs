using System.Diagnostics;

namespace ViTScratch.Training.Cli;

/// <summary>
/// One progress line per epoch: a bar, the step count, running loss and accuracy, learning rate,
/// images per second and time left. On a terminal it redraws in place; when the output is a file
/// or a pipe it prints a plain line every ~10% so logs stay readable.
/// </summary>
public sealed class ProgressBar
{
    private readonly string _label;
    private readonly int _total;
    private readonly TextWriter _out;
    private readonly bool _interactive;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _lastDecile = -1;
    private long _lastDrawTicks;

    public ProgressBar(string label, int total, TextWriter? output = null)
    {
        _label = label;
        _total = Math.Max(1, total);
        _out = output ?? Console.Out;
        _interactive = output is null && !Console.IsOutputRedirected;
    }

    /// <summary>
    /// Whether a report after <paramref name="done"/> steps would be shown. The trainer asks first,
    /// so it reads device-side counters back to the host only when they will be printed.
    /// </summary>
    public bool WillDraw(int done)
    {
        if (done >= _total) return true;
        if (_interactive) return _clock.ElapsedTicks - _lastDrawTicks >= Stopwatch.Frequency / 10;
        return (int)(10L * done / _total) != _lastDecile;
    }

    /// <summary>Reports progress after <paramref name="done"/> of the steps; <paramref name="images"/> seen so far.</summary>
    public void Report(int done, long images, float loss, float accuracy, float lr)
    {
        double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-9);
        double rate = images / seconds;
        double eta = done > 0 ? seconds * (_total - done) / done : 0;
        string stats = $"{done,5}/{_total} loss {loss:F4} acc {accuracy * 100:F2}% lr {lr:E2} {rate,7:F1} img/s ETA {Format(eta)}";
        if (_interactive)
        {
            long now = _clock.ElapsedTicks;
            if (done < _total && now - _lastDrawTicks < Stopwatch.Frequency / 10) return; // redraw at most 10×/s
            _lastDrawTicks = now;
            const int Width = 24;
            int filled = (int)((long)Width * done / _total);
            _out.Write($"\r{_label} [{new string('#', filled)}{new string('.', Width - filled)}] {stats}   ");
            if (done >= _total) _out.WriteLine();
        }
        else
        {
            int decile = (int)(10L * done / _total);
            if (decile == _lastDecile && done < _total) return;
            _lastDecile = decile;
            _out.WriteLine($"{_label} {stats}");
        }
    }

    public static string Format(double seconds) => Runs.Duration.Format(seconds);
}
