namespace ViTScratch.Training.Data;

/// <summary>How <see cref="DatasetCatalog.Load"/> finds, downloads and verifies dataset files.</summary>
public sealed class DatasetOptions
{
    /// <summary>
    /// Where downloads are cached when no --data directory is given. Default: $VIT_CACHE_DIR, else
    /// $XDG_CACHE_HOME/vitscratch, else ~/.cache/vitscratch.
    /// </summary>
    public string CacheDir { get; set; } = DefaultCacheDir();

    /// <summary>
    /// System-wide dataset roots searched after the data and cache directories (MNIST-like sets
    /// only), each as ROOT/&lt;dataset-name&gt;. Default: /usr/share/datasets, where Debian's
    /// dataset-fashion-mnist package installs /usr/share/datasets/fashion-mnist/*.gz.
    /// </summary>
    public IReadOnlyList<string> SystemDirs { get; set; } = ["/usr/share/datasets"];

    /// <summary>
    /// Source override. For CIFAR: the archive URL (http(s)://, file:// or a local path). For
    /// MNIST-like sets: the base URL or directory the four IDX .gz files are fetched from.
    /// When null: the environment variable (VIT_CIFAR10_URL, VIT_CIFAR100_URL,
    /// VIT_FASHION_MNIST_URL, VIT_MNIST_URL), else the official location.
    /// </summary>
    public string? Url { get; set; }

    /// <summary>
    /// Expected MD5 override for the CIFAR archive (for mirrors serving a different build, and for
    /// tests). Null: the official checksum. Empty string: no checksum check (not recommended).
    /// MNIST-like downloads always check the official per-file checksums unless this is "".
    /// </summary>
    public string? ExpectedMd5 { get; set; }

    /// <summary>
    /// True (`--download`): when an explicit data directory does not hold the dataset, download it
    /// into that directory. False (the default): that is an error, so a mistyped --data never
    /// trains on something else.
    /// </summary>
    public bool DownloadIntoDataDir { get; set; }

    /// <summary>False: never download; fail with instructions when the files are not found.</summary>
    public bool AllowDownload { get; set; } = true;

    /// <summary>Where download progress goes. Default: a progress line on stderr. Null: silent.</summary>
    public IProgress<DownloadProgress>? Progress { get; set; } = new ConsoleDownloadProgress();

    /// <summary>Reads environment variables; replaceable so the lookup can be tested without touching the process environment.</summary>
    public Func<string, string?> GetEnvironment { get; set; } = Environment.GetEnvironmentVariable;

    /// <summary>Cancels a download or a load in progress.</summary>
    public CancellationToken Cancel { get; set; }

    /// <summary>How an image folder (`--dataset folder`) is decoded: size, channels, memory bound, strictness.</summary>
    public FolderOptions Folder { get; set; } = new();

    /// <summary>A copy of these options with other image-folder settings.</summary>
    public DatasetOptions WithFolder(FolderOptions folder)
    {
        var copy = (DatasetOptions)MemberwiseClone();
        copy.Folder = folder;
        return copy;
    }

    /// <summary>The dataset cache: $VIT_CACHE_DIR, else vitscratch/ under $XDG_CACHE_HOME or ~/.cache.</summary>
    public static string DefaultCacheDir()
    {
        string? dir = Environment.GetEnvironmentVariable("VIT_CACHE_DIR");
        if (!string.IsNullOrWhiteSpace(dir)) return dir;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrWhiteSpace(xdg) ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "vitscratch");
    }
}
