
namespace ViTScratch.Training.Data;

/// <summary>
/// Where the decoded images of one image-folder split live. The first <see cref="CachedCount"/>
/// images (in the split's order) stay decoded in memory, in chunks whose total the run's
/// <see cref="CacheBudget"/> (`--cache-mb`) bounds; every other image is decoded again from its
/// file each time it is read, by whichever thread reads it: the loader's workers, ahead of the
/// step. Both paths give the same bytes (the same decoder on the same file), so a run's batches do
/// not depend on how much of the split fits in memory.
///
/// Each file's size and modification time are recorded when the split is scanned; a streamed file
/// that is gone, changed or no longer decodes is skipped with one warning line naming it (the
/// split's statistics and fingerprint describe the files as scanned), counted, and reported at the
/// end of the epoch; with --strict it stops the run instead.
/// </summary>
internal sealed class FolderImageStore
{
    // Chunks of at most 256 MiB: far below .NET's 2 GiB array limit, few enough to index cheaply.
    private const long ChunkBytes = 256L << 20;

    private string[] _paths;
    private long[] _lengths, _writeTicks;
    private readonly List<byte[]> _chunks = new();
    private readonly int _imagesPerChunk;
    private readonly FolderOptions _o;
    private readonly string _split;
    private readonly HashSet<string> _warned = new();
    private int _skippedSinceReport;
    private bool _cacheFull;

    public FolderImageStore(int count, int imageBytes, FolderOptions options, string split)
    {
        _paths = new string[count];
        _lengths = new long[count];
        _writeTicks = new long[count];
        ImageBytes = imageBytes;
        _imagesPerChunk = (int)Math.Max(1, ChunkBytes / imageBytes);
        _o = options;
        _split = split;
    }

    public int Count => _paths.Length;
    public int ImageBytes { get; }
    /// <summary>Images 0 .. CachedCount-1 are held decoded; the rest are streamed.</summary>
    public int CachedCount { get; private set; }
    public long CachedBytes => (long)CachedCount * ImageBytes;

    /// <summary>
    /// Records image <paramref name="k"/> as scanned (called in order, k = 0, 1, ...): its file and
    /// stamp, and its pixels into the cache while the budget lasts. The cache is a prefix: once an
    /// image does not fit, no later one is cached, so "cached" is simply k &lt; CachedCount.
    /// </summary>
    public void Add(int k, string path, FileStamp stamp, byte[] pixels, CacheBudget budget)
    {
        _paths[k] = path;
        (_lengths[k], _writeTicks[k]) = (stamp.Length, stamp.WriteTicks);
        if (_cacheFull || k != CachedCount) { _cacheFull = true; return; }
        int slot = k % _imagesPerChunk;
        if (slot == 0)
        {
            // A chunk takes its whole size from the budget up front, so memory never exceeds it.
            long room = Math.Min(Math.Min(_imagesPerChunk, Count - k), budget.Left / ImageBytes);
            if (room == 0 || !budget.TryTake(room * ImageBytes)) { _cacheFull = true; return; }
            _chunks.Add(new byte[room * ImageBytes]);
        }
        else if ((long)(slot + 1) * ImageBytes > _chunks[^1].LongLength) { _cacheFull = true; return; } // the budget's last chunk is full
        pixels.CopyTo(_chunks[^1], (long)slot * ImageBytes);
        CachedCount++;
    }

    /// <summary>Drops the slots of skipped files once the scan is over: the store then holds <paramref name="count"/> images.</summary>
    public void Trim(int count)
    {
        Array.Resize(ref _paths, count);
        Array.Resize(ref _lengths, count);
        Array.Resize(ref _writeTicks, count);
    }

    public bool IsCached(int k) => k < CachedCount;

    /// <summary>The pixels of cached image <paramref name="k"/>, in place.</summary>
    public ReadOnlySpan<byte> Cached(int k) => _chunks[k / _imagesPerChunk].AsSpan((k % _imagesPerChunk) * ImageBytes, ImageBytes);

    /// <summary>The pixels of image <paramref name="k"/>, or false when its file can no longer be read as scanned (warned and counted; with --strict, thrown).</summary>
    public bool TryRead(int k, out ReadOnlySpan<byte> pixels)
    {
        if (IsCached(k))
        {
            pixels = Cached(k);
            return true;
        }
        string? problem = TryDecode(k, out var decoded);
        pixels = decoded;
        if (problem is null) return true;
        if (_o.Strict) throw new ViTScratchException($"{problem} (--strict stops at the first unreadable image)");
        lock (_warned)
        {
            _skippedSinceReport++;
            if (_warned.Add(_paths[k])) _o.Log.WriteLine($"warning: skipped while streaming: {problem}");
        }
        return false;
    }

    /// <summary>The pixels of image <paramref name="k"/>; an unreadable file is an error here (no batch to leave it out of).</summary>
    public ReadOnlySpan<byte> Read(int k) => IsCached(k) ? Cached(k) : Decode(k);

    /// <summary>Decodes image <paramref name="k"/> from its file; an unreadable or changed file is an error.</summary>
    public byte[] Decode(int k) => TryDecode(k, out var decoded) is { } problem ? throw new ViTScratchException(problem) : decoded;

    /// <summary>Prints how many reads the loader skipped since the last report (once per epoch), if any.</summary>
    public void ReportSkipped()
    {
        int skipped;
        lock (_warned) (skipped, _skippedSinceReport) = (_skippedSinceReport, 0);
        if (skipped > 0)
            _o.Log.WriteLine($"warning: {skipped} image{(skipped == 1 ? "" : "s")} of the {_split} split could not be read while streaming and " +
                $"{(skipped == 1 ? "was" : "were")} left out of {(skipped == 1 ? "its batch" : "their batches")} this pass");
    }

    private string? TryDecode(int k, out byte[] pixels)
    {
        pixels = [];
        string path = _paths[k];
        try
        {
            var now = FileStamp.Of(path);
            if (now is null) return $"image '{path}' was removed after the {_split} split was scanned";
            if (now.Value.Length != _lengths[k] || now.Value.WriteTicks != _writeTicks[k])
                return $"image '{path}' changed after the {_split} split was scanned (its statistics and fingerprint describe the old file); restart the run to rescan";
            pixels = ImageDecoders.Resolve(_o.Decoder)(path, _o.Channels, _o.ImageSize, _o.MaxPixels);
            return null;
        }
        catch (ViTScratchException e) { return e.Message; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return $"image '{path}' could not be read ({e.Message})"; }
    }
}

/// <summary>A file's size and last write time, taken when it is scanned, to notice a file changed under a run.</summary>
internal readonly record struct FileStamp(long Length, long WriteTicks)
{
    public static FileStamp? Of(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? new FileStamp(info.Length, info.LastWriteTimeUtc.Ticks) : null;
    }
}

/// <summary>
/// The decoded-image memory of one run (`--cache-mb`), shared by its splits in the order they are
/// loaded: training first (read every epoch), then validation, then test (read once at the end).
/// Pass one instance in <see cref="FolderOptions.Budget"/> to every split that should share it.
/// </summary>
/// <param name="bytes">The most bytes of decoded pixels all the splits together may hold.</param>
public sealed class CacheBudget(long bytes)
{
    private long _left = bytes;

    /// <summary>Bytes of the budget not yet taken by a split's cached images.</summary>
    public long Left => Interlocked.Read(ref _left);

    internal bool TryTake(long bytes)
    {
        while (true)
        {
            long left = Interlocked.Read(ref _left);
            if (left < bytes) return false;
            if (Interlocked.CompareExchange(ref _left, left - bytes, left) == left) return true;
        }
    }
}
