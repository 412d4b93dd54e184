namespace ViTScratch.Training.Data;

/// <summary>
/// An in-memory labelled image dataset of uint8 pixels.
///
/// Layout: images are stored one after another, each in CHW order (all of channel 0 row-major,
/// then channel 1, ...): pixel (i, c, y, x) is at <c>Pixels[i*C*H*W + c*H*W + y*W + x]</c>.
/// CHW is chosen because it is both the CIFAR binary layout (1024 R, 1024 G, 1024 B) and the
/// layout the model consumes ([B, C, H, W] float batches), so loading is a plain copy and
/// batching never transposes. uint8 keeps CIFAR-10's 50k training images at 150 MiB instead of
/// 600 MiB as float; conversion to float and normalisation happen per batch in the DataLoader.
///
/// Mean / Std are the per-channel normalisation statistics of the dataset (in [0,1] pixel
/// units): the loader outputs (pixel/255 - Mean[c]) / Std[c].
///
/// An image folder's split is not one array: its images that fit in `--cache-mb` stay decoded in
/// memory and the rest are decoded from their files when read (<see cref="CachedCount"/> says how
/// many are held). Read images with <see cref="Image"/>; <see cref="Pixels"/> exists only for
/// datasets held whole in memory.
/// </summary>
public sealed class ImageDataset
{
    /// <summary>The dataset's name.</summary>
    public string Name { get; }
    /// <summary>Number of images.</summary>
    public int Count { get; }
    /// <summary>Channels per image.</summary>
    public int Channels { get; }
    /// <summary>Image height.</summary>
    public int Height { get; }
    /// <summary>Image width.</summary>
    public int Width { get; }
    /// <summary>
    /// All images, CHW each, concatenated: length Count * Channels * Height * Width. Only for a
    /// dataset held whole in memory (CIFAR, MNIST, one made from arrays); an image folder's split
    /// streams what its cache cannot hold and has no such array: use <see cref="Image"/>.
    /// </summary>
    public byte[] Pixels => _pixels ?? throw new InvalidOperationException(
        $"dataset '{Name}' is an image folder's split, read image by image from its cache and files; use Image(i) instead of Pixels");
    /// <summary>Class index per image, each &lt; ClassNames.Length.</summary>
    public byte[] Labels { get; }
    /// <summary>The class names, by index.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>Per-channel mean used to normalise.</summary>
    public IReadOnlyList<float> Mean { get; }
    /// <summary>Per-channel standard deviation used to normalise.</summary>
    public IReadOnlyList<float> Std { get; }

    /// <summary>The absolute directory the files were read from (null for data made in memory).</summary>
    public string? Source { get; init; }

    /// <summary>Bytes per image.</summary>
    public int ImageSize => Channels * Height * Width;
    /// <summary>Number of classes.</summary>
    public int ClassCount => ClassNames.Count;

    /// <summary>Images held decoded in memory; the other Count − CachedCount are decoded from their files on every read.</summary>
    public int CachedCount => _store is null ? Count : _map is null ? Math.Min(_store.CachedCount, Count) : _map.Count(k => k < _store.CachedCount);

    private readonly byte[]? _pixels;
    // An image folder's split: its images in the store, in the order _map gives (null: the store's own order).
    private readonly FolderImageStore? _store;
    private readonly int[]? _map;

    /// <summary>A dataset of <paramref name="count"/> uint8 CHW images in memory with their labels and normalisation; build one from your own arrays.</summary>
    public ImageDataset(string name, int count, int channels, int height, int width,
        byte[] pixels, byte[] labels, IReadOnlyList<string> classNames,
        IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classNames);
        if (count < 0 || channels <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"Invalid dataset shape count={count} C={channels} H={height} W={width}.");
        if (pixels.LongLength != (long)count * channels * height * width)
            throw new ArgumentException($"pixels has {pixels.LongLength} bytes, expected {count}*{channels}*{height}*{width}.");
        if (labels.Length != count)
            throw new ArgumentException($"labels has {labels.Length} entries, expected {count}.");
        if (classNames.Count is 0 or > 256)
            throw new ArgumentException($"class count {classNames.Count} must be in 1..256.");
        if (mean.Count != channels || std.Count != channels)
            throw new ArgumentException($"mean/std need {channels} entries (one per channel).");
        for (int c = 0; c < channels; c++)
            if (!(std[c] > 0)) throw new ArgumentException($"std[{c}] = {std[c]} must be > 0.");
        for (int i = 0; i < count; i++)
            if (labels[i] >= classNames.Count)
                throw new ViTScratchException(
                    $"Dataset '{name}': image {i} has label {labels[i]} but there are only {classNames.Count} classes " +
                    "(0.." + (classNames.Count - 1) + "). The data file is corrupt or belongs to another dataset; " +
                    "delete it and let it be downloaded again, or point --data at a correct copy.");

        Name = name; Count = count; Channels = channels; Height = height; Width = width;
        _pixels = pixels; Labels = labels; ClassNames = classNames; Mean = mean; Std = std;
    }

    /// <summary>An image folder's split: its pixels come from <paramref name="store"/> (cache, then files), image i being store image map[i].</summary>
    internal ImageDataset(string name, FolderImageStore store, int[]? map, int height, byte[] labels, IReadOnlyList<string> classNames,
        IReadOnlyList<float> mean, IReadOnlyList<float> std, string? scanFingerprint)
    {
        Name = name; Count = labels.Length; Channels = store.ImageBytes / (height * height); Height = height; Width = height;
        Labels = labels; ClassNames = classNames; Mean = mean; Std = std;
        _store = store; _map = map; _fingerprint = scanFingerprint;
    }

    /// <summary>The CHW pixels of image <paramref name="index"/> (decoded from its file when it is not cached).</summary>
    public ReadOnlySpan<byte> Image(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        if (_store is not null) return _store.Read(StoreIndex(index));
        return _pixels.AsSpan(index * ImageSize, ImageSize);
    }

    /// <summary>
    /// The pixels of image <paramref name="index"/> for a batch: false when a streamed file can no
    /// longer be read as it was scanned (warned about and counted; the loader leaves it out).
    /// </summary>
    internal bool TryRead(int index, out ReadOnlySpan<byte> image)
    {
        if (_store is not null) return _store.TryRead(StoreIndex(index), out image);
        image = _pixels.AsSpan(index * ImageSize, ImageSize);
        return true;
    }

    private int StoreIndex(int index) => _map is null ? index : _map[index];

    /// <summary>After a pass over the data: the count of streamed images left out since the last pass, if any.</summary>
    internal void ReportSkipped() => _store?.ReportSkipped();

    /// <summary>
    /// A content fingerprint: the first 16 bytes of SHA-256 over the shape, the labels and every
    /// pixel, in hex. Two splits with the same fingerprint hold the same images in the same order,
    /// which is what a resumed run needs (its batches are positions in that order). About 30 ms for
    /// Fashion-MNIST's 47 MB of training pixels. Computed once.
    /// </summary>
    public string Fingerprint()
    {
        if (_fingerprint is not null) return _fingerprint;
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        AppendFingerprintHeader(sha, Count, Channels, Height, Width, Labels);
        if (_store is null) sha.AppendData(_pixels!);
        else
        {
            // An image folder's split hashes the same bytes in the same order; its streamed images
            // are decoded again (in parallel, a window at a time, so memory stays bounded). Only a
            // subset or a split with skipped files gets here: a whole split's hash is taken at its scan.
            int window = ImageFolder.DecodeWindow(ImageSize);
            var decoded = new byte[window][];
            for (int start = 0; start < Count; start += window)
            {
                int n = Math.Min(window, Count - start);
                try { Parallel.For(0, n, i => decoded[i] = _store.IsCached(StoreIndex(start + i)) ? [] : _store.Decode(StoreIndex(start + i))); }
                catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault(x => x is ViTScratchException) is { } first)
                {
                    throw new ViTScratchException($"the {Name} data in '{Source}' cannot be fingerprinted: {first.Message}", first);
                }
                for (int i = 0; i < n; i++)
                    sha.AppendData(_store.IsCached(StoreIndex(start + i)) ? _store.Cached(StoreIndex(start + i)) : decoded[i]);
            }
        }
        return _fingerprint = Convert.ToHexStringLower(sha.GetHashAndReset().AsSpan(0, 16));
    }

    /// <summary>The header the fingerprint starts with; shared with the scan, which hashes a whole split as it decodes it.</summary>
    internal static void AppendFingerprintHeader(System.Security.Cryptography.IncrementalHash sha, int count, int channels, int height, int width, byte[] labels)
    {
        Span<byte> header = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header, count);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header[4..], channels);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header[8..], height);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header[12..], width);
        sha.AppendData(header);
        sha.AppendData(labels);
    }

    private string? _fingerprint;

    /// <summary>
    /// The images at <paramref name="indices"/>, in that order; for splits. A copy of the pixels for
    /// a dataset held in memory; an image folder's subset shares its cache and files.
    /// </summary>
    public ImageDataset Subset(IReadOnlyList<int> indices)
    {
        var labels = new byte[indices.Count];
        for (int k = 0; k < indices.Count; k++)
        {
            if ((uint)indices[k] >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {indices[k]} is outside 0..{Count - 1}");
            labels[k] = Labels[indices[k]];
        }
        if (_store is not null)
            return new ImageDataset(Name, _store, indices.Select(StoreIndex).ToArray(), Height, labels, ClassNames, Mean, Std, scanFingerprint: null) { Source = Source };
        var pixels = new byte[(long)indices.Count * ImageSize];
        for (int k = 0; k < indices.Count; k++) Image(indices[k]).CopyTo(pixels.AsSpan(k * ImageSize, ImageSize));
        return new ImageDataset(Name, indices.Count, Channels, Height, Width, pixels, labels, ClassNames, Mean, Std) { Source = Source };
    }

    /// <summary>The first <paramref name="count"/> images, e.g. for quick runs or smoke tests (a copy, or for an image folder a view).</summary>
    public ImageDataset Take(int count)
    {
        count = Math.Clamp(count, 0, Count);
        if (_store is not null) return Subset(Enumerable.Range(0, count).ToArray());
        return new ImageDataset(Name, count, Channels, Height, Width,
            Pixels.AsSpan(0, count * ImageSize).ToArray(), Labels.AsSpan(0, count).ToArray(),
            ClassNames, Mean, Std) { Source = Source };
    }
}
