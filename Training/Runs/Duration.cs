namespace ViTScratch.Training.Runs;

/// <summary>A duration as the logs print it: mm:ss, or XhYYm from an hour on.</summary>
internal static class Duration
{
    public static string Format(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Max(0, seconds));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : $"{t.Minutes:D2}:{t.Seconds:D2}";
    }
}
