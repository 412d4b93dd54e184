using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;

namespace ViTScratch.Training.Data;

/// <summary>
/// Fetches dataset files: over HTTP(S), or from a file:// URL or plain local path (a mirror or a
/// copy made on another machine). Every fetch streams into a temporary file next to the target
/// while computing its MD5, checks the MD5, and only then renames the temporary file to the final
/// name — so an interrupted or corrupt download never leaves a file that looks complete.
/// Also extracts .tar.gz archives (System.Formats.Tar over GZipStream) with the same
/// "temporary directory, then rename" discipline.
/// </summary>
internal static class DatasetDownloader
{
    /// <summary>Time without any received byte after which a download is abandoned.</summary>
    public static TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Downloads <paramref name="url"/> to <paramref name="destination"/> unless it already exists.
    /// <paramref name="expectedMd5"/> null or empty skips the check (only for overridden sources whose
    /// checksum is unknown). <paramref name="hint"/> is appended to network errors: how to get the data otherwise.
    /// </summary>
    public static void Fetch(string url, string destination, string? expectedMd5, string hint,
        IProgress<DownloadProgress>? progress = null, CancellationToken cancel = default)
    {
        if (File.Exists(destination)) return;
        string dir = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        try { Directory.CreateDirectory(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ViTScratchException($"Cannot create the data directory '{dir}': {e.Message}. Pass a writable directory with --data DIR.", e);
        }

        string name = Path.GetFileName(destination);
        string temp = Path.Combine(dir, $".{name}.{Environment.ProcessId}.{Guid.NewGuid():N}.part");
        try
        {
            string md5;
            using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                md5 = LocalPath(url) is string local
                    ? CopyLocal(local, output, name, progress, hint, cancel)
                    : DownloadHttp(url, output, name, progress, hint, cancel);
            }
            if (!string.IsNullOrEmpty(expectedMd5) && !md5.Equals(expectedMd5, StringComparison.OrdinalIgnoreCase))
                throw new ViTScratchException(
                    $"The downloaded file {name} from {url} has MD5 {md5}, expected {expectedMd5.ToLowerInvariant()}: it is corrupt, " +
                    "truncated, or not the official file. Run again to retry the download; if it keeps failing, the URL override or " +
                    "mirror serves a different file — fix the URL, or download the file yourself and pass its directory with --data DIR.");
            File.Move(temp, destination, overwrite: true);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    /// <summary>The local path a URL refers to (file:// URLs and plain paths), or null for a network URL.</summary>
    public static string? LocalPath(string url)
    {
        if (Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            if (uri.IsFile) return uri.LocalPath;
            if (uri.Scheme is "http" or "https") return null;
            throw new ViTScratchException($"Unsupported URL scheme in '{url}': use http://, https://, file:// or a local path.");
        }
        return Path.GetFullPath(url);
    }

    private static string CopyLocal(string path, Stream output, string name, IProgress<DownloadProgress>? progress,
        string hint, CancellationToken cancel)
    {
        FileStream input;
        try { input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ViTScratchException($"Cannot read the local source '{path}' for {name}: {e.Message}. {hint}", e);
        }
        using (input)
            return CopyHashing(input, output, name, input.Length, progress, cancel);
    }

    private static string DownloadHttp(string url, Stream output, string name, IProgress<DownloadProgress>? progress,
        string hint, CancellationToken cancel)
    {
        // One client per download is fine here (a handful of files per run, never in a loop).
        using var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(30), AutomaticDecompression = DecompressionMethods.None };
        using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            using var response = client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancel).GetAwaiter().GetResult();
            if (!response.IsSuccessStatusCode)
                throw new ViTScratchException(
                    $"Download of {name} from {url} failed: the server answered HTTP {(int)response.StatusCode} {response.ReasonPhrase}. {hint}");
            using var body = response.Content.ReadAsStream(cancel);
            return CopyHashing(body, output, name, response.Content.Headers.ContentLength, progress, cancel);
        }
        catch (HttpRequestException e)
        {
            throw new ViTScratchException($"Download of {name} from {url} failed: {e.Message} (no network, or the server is unreachable). {hint}", e);
        }
        catch (IOException e)
        {
            throw new ViTScratchException($"Download of {name} from {url} was interrupted: {e.Message}. Run again to retry. {hint}", e);
        }
        catch (OperationCanceledException e) when (!cancel.IsCancellationRequested)
        {
            throw new ViTScratchException($"Download of {name} from {url} stalled for {StallTimeout.TotalSeconds:F0} s. {hint}", e);
        }
    }

    private static string CopyHashing(Stream input, Stream output, string name, long? total,
        IProgress<DownloadProgress>? progress, CancellationToken cancel)
    {
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        var buffer = new byte[1 << 16];
        long done = 0;
        while (true)
        {
            // A per-read timeout turns a silently stalled connection into an error instead of a hang.
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            stall.CancelAfter(StallTimeout);
            int n = input.ReadAsync(buffer, stall.Token).AsTask().GetAwaiter().GetResult();
            if (n == 0) break;
            md5.AppendData(buffer, 0, n);
            output.Write(buffer, 0, n);
            done += n;
            progress?.Report(new DownloadProgress(name, done, total, false));
        }
        if (total is long t && done != t)
            throw new IOException($"received {done} of {t} bytes");
        progress?.Report(new DownloadProgress(name, done, total, true));
        return Convert.ToHexStringLower(md5.GetHashAndReset());
    }

    /// <summary>
    /// Extracts a .tar.gz into <paramref name="targetDir"/>. Entries are first written to a fresh
    /// temporary directory inside targetDir; then each top-level item is renamed into place, so a
    /// failed extraction leaves nothing half-written. Entries escaping the directory (absolute
    /// paths, "..") are rejected. Each entry's byte count is checked against its header, which
    /// catches archives truncated inside an entry even where the gzip layer ends quietly.
    /// </summary>
    public static void ExtractTarGz(string archive, string targetDir, bool deleteArchiveOnFailure = false, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(targetDir);
        string staging = Path.Combine(targetDir, $".extract.{Environment.ProcessId}.{Guid.NewGuid():N}");
        string stagingFull = Path.GetFullPath(staging) + Path.DirectorySeparatorChar;
        Directory.CreateDirectory(staging);
        string name = Path.GetFileName(archive);
        try
        {
            int files = 0;
            using (var file = File.OpenRead(archive))
            using (var gzip = new GZipStream(file, CompressionMode.Decompress))
            using (var tar = new TarReader(gzip))
            {
                while (tar.GetNextEntry() is TarEntry entry)
                {
                    cancel.ThrowIfCancellationRequested();
                    string rel = entry.Name.Replace('\\', '/').TrimStart('.', '/');
                    if (rel.Length == 0) continue;
                    string full = Path.GetFullPath(Path.Combine(staging, rel));
                    if (Path.IsPathRooted(entry.Name) || entry.Name.Split('/', '\\').Contains("..") || !full.StartsWith(stagingFull, StringComparison.Ordinal))
                        throw new InvalidDataException($"entry '{entry.Name}' points outside the extraction directory");
                    if (entry.EntryType == TarEntryType.Directory) { Directory.CreateDirectory(full); continue; }
                    if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue; // links etc.: not in the datasets
                    Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                    long written = 0;
                    using (var output = File.Create(full))
                    {
                        if (entry.DataStream is Stream data)
                        {
                            var buffer = new byte[1 << 16];
                            int n;
                            while ((n = data.Read(buffer)) > 0) { output.Write(buffer, 0, n); written += n; }
                        }
                    }
                    if (written != entry.Length)
                        throw new EndOfStreamException($"entry '{entry.Name}' has {written} of its {entry.Length} bytes");
                    files++;
                }
            }
            if (files == 0) throw new InvalidDataException("it contains no files");

            foreach (var item in Directory.EnumerateFileSystemEntries(staging))
            {
                string dest = Path.Combine(targetDir, Path.GetFileName(item));
                if (Directory.Exists(dest)) Directory.Delete(dest, recursive: true);
                else if (File.Exists(dest)) File.Delete(dest);
                Directory.Move(item, dest);
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or IOException
                                    && e is not DirectoryNotFoundException && e is not UnauthorizedAccessException)
        {
            if (deleteArchiveOnFailure) TryDelete(archive);
            throw new ViTScratchException(
                $"The archive '{archive}' is corrupt or truncated ({e.Message}). " +
                (deleteArchiveOnFailure ? "It has been deleted: run again to download it afresh, " : "Delete it and run again to download it afresh, ") +
                $"or download {name} yourself, extract it, and pass its directory with --data DIR.", e);
        }
        finally
        {
            try { if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); } catch (IOException) { }
        }
    }

    private static void TryDelete(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
