using System.Text;
using System.Text.RegularExpressions;

namespace ViTScratch.Training.Runs;

/// <summary>
/// Writes files so that a crash, Ctrl+C or a full disk never leaves a half-written one behind:
/// the bytes go to a hidden temporary file beside the target (".NAME.GUID.tmp", the same pattern
/// SafeTensors.Write uses), are flushed to disk, and only then renamed over the target. A failed
/// write leaves the old file as it was and throws one line naming the target and the fix.
/// </summary>
internal static partial class AtomicFile
{
    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new UTF8Encoding(false), leaveOpen: true); w.Write(text); });

    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(dir);
            using (var s = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(s);
                s.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ViTScratchException(WriteFailure(full, e), e);
        }
        finally
        {
            try { if (File.Exists(tmp)) File.Delete(tmp); } catch (Exception) { /* best effort: the write error matters more */ }
        }
    }

    /// <summary>"cannot write 'PATH': WHY; FIX" for an exception thrown while writing <paramref name="path"/>.</summary>
    public static string WriteFailure(string path, Exception e) => $"cannot write '{path}': {Reason(e)}";

    /// <summary>The cause of an I/O failure in words, with what to do about it.</summary>
    public static string Reason(Exception e) => e switch
    {
        UnauthorizedAccessException => "permission denied; choose a directory you can write to or fix its permissions",
        DirectoryNotFoundException => "a directory on its path does not exist; create it or choose another path",
        IOException io when IsDiskFull(io) => "the disk is full; free some space or write elsewhere, then run again",
        IOException io when io.HResult == 30 || io.Message.Contains("Read-only file system", StringComparison.Ordinal) =>
            "the file system is read-only; choose a writable directory",
        _ => e.Message,
    };

    /// <summary>ENOSPC (28) or EDQUOT (122): the disk, or the user's quota, is full.</summary>
    public static bool IsDiskFull(IOException e) =>
        e.HResult is 28 or 122 || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase)
            || e.Message.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Deletes the temporary files that interrupted writes (a kill -9, a power cut) left in
    /// <paramref name="dir"/>: this class's and SafeTensors.Write's ".NAME.GUID.tmp", and the
    /// "NAME.tmp-PID" names that earlier versions used. Returns how many it removed.
    /// </summary>
    public static int RemoveStaleTemps(string dir)
    {
        if (!Directory.Exists(dir)) return 0;
        int removed = 0;
        foreach (var file in Directory.EnumerateFiles(dir))
        {
            if (!StaleTemp().IsMatch(Path.GetFileName(file))) continue;
            try { File.Delete(file); removed++; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* another process's, or not ours to delete */ }
        }
        return removed;
    }

    [GeneratedRegex(@"^(\..+\.[0-9a-f]{32}\.tmp|.+\.tmp-[0-9]+(\.png)?)$")]
    private static partial Regex StaleTemp();
}
