namespace ViTScratch.Training.Runs;

/// <summary>
/// A run directory holds one training run: config.json, metrics.csv, curves.png and the
/// checkpoints. The rule that protects hours of training: a new run never replaces an existing one
/// unless asked (--force). `vit train` without --out picks the preset's folder, or the first free
/// numbered one beside it (runs/fashion-mnist-vit-micro-2, -3, ...), so running the same command
/// twice keeps both results; an explicit --out that holds a run is an error that offers --resume.
/// </summary>
internal static class RunDirectory
{
    /// <summary>The files a run writes; any of them present means the directory holds a run.</summary>
    public static IReadOnlyList<string> RunFiles { get; } =
        ["config.json", "metrics.csv", "curves.png", "best.safetensors", "last.safetensors", "result.json"];

    public static bool HoldsRun(string dir) => RunFiles.Any(f => File.Exists(Path.Combine(dir, f)));

    /// <summary><paramref name="preferred"/> if it holds no run, else the first of preferred-2, -3, ... that holds none.</summary>
    public static string FirstFree(string preferred)
    {
        if (!HoldsRun(preferred)) return preferred;
        string trimmed = Path.TrimEndingDirectorySeparator(preferred);
        for (int i = 2; ; i++)
        {
            string candidate = $"{trimmed}-{i}";
            if (!HoldsRun(candidate)) return candidate;
        }
    }

    /// <summary>
    /// Makes <paramref name="dir"/> ready for a new run: refuses one that holds a run unless
    /// <paramref name="force"/> (which deletes that run's files), creates it, checks that it can be
    /// written to, and removes temporary files that interrupted writes left there. Every failure is
    /// one line naming the directory.
    /// </summary>
    public static void PrepareForNewRun(string dir, bool force)
    {
        if (HoldsRun(dir))
        {
            if (!force)
                throw new ViTScratchException($"vit train: '{dir}' already holds a run ({string.Join(", ", RunFiles.Where(f => File.Exists(Path.Combine(dir, f))))}); " +
                    $"continue it with 'vit train --resume {dir}', choose another --out, or pass --force to replace it");
            foreach (var f in RunFiles)
                Delete(Path.Combine(dir, f));
            foreach (var events in Directory.GetFiles(dir, TensorBoardLog.FilePrefix + "*"))
                Delete(events);
        }
        PrepareForWriting(dir);
    }

    /// <summary>Creates <paramref name="dir"/> if needed, proves it is writable, and clears stale temporary files.</summary>
    public static void PrepareForWriting(string dir)
    {
        string full = Path.GetFullPath(dir);
        string probe = Path.Combine(full, $".write-check.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(full);
            File.WriteAllBytes(probe, [0]);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ViTScratchException($"vit train: cannot write to the run directory '{full}': {AtomicFile.Reason(e)} (or pass --out DIR)", e);
        }
        AtomicFile.RemoveStaleTemps(full);
    }

    private static void Delete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ViTScratchException($"vit train --force: cannot delete '{path}': {AtomicFile.Reason(e)}", e);
        }
    }
}
