namespace ViTScratch.Training.Commands;

/// <summary>
/// Did this process get its cores? Linux's /proc/self/task/*/schedstat gives, per thread, the time
/// it ran and the time it waited, runnable, for a core. Summed over the threads between two
/// samples, the waiting share says how much of the time the process wanted to run it could not:
/// other work on the machine. A quiet machine shows a few percent at most; a benchmark window with
/// much more understates the code. Null where the kernel does not expose it.
/// </summary>
public readonly record struct RunQueueWait(long RunNs, long WaitNs)
{
    public static RunQueueWait? Sample()
    {
        try
        {
            long run = 0, wait = 0;
            foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
            {
                string text;
                try { text = File.ReadAllText(Path.Combine(task, "schedstat")); }
                catch (IOException) { continue; } // the thread ended between the listing and the read
                var f = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                run += long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture);
                wait += long.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            return new RunQueueWait(run, wait);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>The share of runnable time spent waiting for a core between two samples (0..1).</summary>
    public static double WaitingShare(RunQueueWait before, RunQueueWait after)
    {
        double run = after.RunNs - before.RunNs, wait = after.WaitNs - before.WaitNs;
        return run + wait > 0 ? wait / (run + wait) : 0;
    }
}
