using System.Buffers.Binary;
using System.IO.Compression;

namespace ViTScratch.Training.Data;

/// <summary>
/// Reader for the IDX files of MNIST and Fashion-MNIST, plain or gzip-compressed (detected by
/// the gzip magic 1F 8B, not by the file name, so a mis-named file still loads).
///
/// Format: a big-endian u32 magic 0x000008NN, where 08 = unsigned byte elements and NN = the
/// number of dimensions (3 for images [N, rows, cols], 1 for labels [N]); then NN big-endian u32
/// dimension sizes; then the elements row-major. Grayscale images are already CHW with C = 1.
///
/// The header is checked against the file before the body is allocated: a plain file must hold
/// exactly the bytes its header declares; a gzip file cannot hold more than deflate's ratio allows
/// of its compressed size, and its body is read in growing chunks, so a header claiming billions
/// of images costs only the bytes that really decompress.
/// </summary>
internal static class IdxFormat
{
    public const uint ImagesMagic = 0x00000803, LabelsMagic = 0x00000801;

    /// <summary>Reads an idx3 image file: returns the pixels and (count, rows, cols).</summary>
    public static (byte[] Pixels, int Count, int Rows, int Cols) ReadImages(string path)
    {
        using var stream = OpenMaybeGzip(path);
        return ReadImages(stream, path);
    }

    public static (byte[] Pixels, int Count, int Rows, int Cols) ReadImages(Stream stream, string displayName)
    {
        var dims = ReadHeader(stream, displayName, ImagesMagic, 3, "image");
        long total = (long)dims[0] * dims[1] * dims[2];
        if (dims[1] == 0 || dims[2] == 0 || total > int.MaxValue)
            throw new ViTScratchException($"IDX image file '{displayName}' declares an unusable shape [{dims[0]}, {dims[1]}, {dims[2]}]. " +
                "The file is corrupt: delete it and download it again.");
        var pixels = ReadBody(stream, displayName, total, "images", dims[0]);
        return (pixels, dims[0], dims[1], dims[2]);
    }

    /// <summary>Reads an idx1 label file.</summary>
    public static byte[] ReadLabels(string path)
    {
        using var stream = OpenMaybeGzip(path);
        return ReadLabels(stream, path);
    }

    public static byte[] ReadLabels(Stream stream, string displayName)
    {
        var dims = ReadHeader(stream, displayName, LabelsMagic, 1, "label");
        return ReadBody(stream, displayName, dims[0], "labels", dims[0]);
    }

    /// <summary>Opens a file and, if it starts with the gzip magic, wraps it in a GZipStream.</summary>
    public static Stream OpenMaybeGzip(string path)
    {
        FileStream file;
        try { file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ViTScratchException($"Data file '{path}' does not exist. Check the --data directory or let the dataset be downloaded.", e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ViTScratchException($"Cannot read data file '{path}': {e.Message}. Check its permissions.", e);
        }
        int b0 = file.ReadByte(), b1 = file.ReadByte();
        file.Position = 0;
        if (b0 == 0x1F && b1 == 0x8B) return new GZipStream(file, CompressionMode.Decompress);
        return file;
    }

    private static int[] ReadHeader(Stream stream, string name, uint expectedMagic, int rank, string kind)
    {
        Span<byte> word = stackalloc byte[4];
        if (!TryReadExactly(stream, word, name))
            throw Truncated(name, "its header");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(word);
        if (magic != expectedMagic)
            throw new ViTScratchException(
                $"'{name}' is not an IDX {kind} file: magic number 0x{magic:X8}, expected 0x{expectedMagic:X8}. " +
                (magic is ImagesMagic or LabelsMagic
                    ? "It looks like the image and label files are swapped; check the file names."
                    : "It is corrupt or not an MNIST/Fashion-MNIST file: delete it and download it again."));
        var dims = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            if (!TryReadExactly(stream, word, name)) throw Truncated(name, "its header");
            uint v = BinaryPrimitives.ReadUInt32BigEndian(word);
            if (v > int.MaxValue)
                throw new ViTScratchException($"IDX file '{name}' declares dimension {d} = {v}, which is corrupt. Delete it and download it again.");
            dims[d] = (int)v;
        }
        return dims;
    }

    /// <summary>Deflate encodes at most 258 bytes in about two bits, so one compressed byte yields at most 1032 bytes.</summary>
    private const long MaxDeflateRatio = 1032;

    /// <summary>A gzip body is read in chunks of this size at first, doubling up to the declared length.</summary>
    private const int FirstChunk = 1 << 20;

    private static byte[] ReadBody(Stream stream, string name, long length, string what, int count)
    {
        string declared = $"the {count} {what} its header declares";
        if (stream.CanSeek)
        {
            long remaining = stream.Length - stream.Position;
            if (remaining < length) throw Truncated(name, $"{declared} ({length} bytes; {remaining} follow the header)");
            if (remaining > length)
                throw new ViTScratchException($"IDX file '{name}' has {remaining - length} bytes after {declared}; its header or the file is corrupt. " +
                    "Delete it and download it again.");
            var data = GC.AllocateUninitializedArray<byte>((int)length);
            if (!TryReadExactly(stream, data, name)) throw Truncated(name, declared);
            return data;
        }
        if (stream is GZipStream { BaseStream.CanSeek: true } gzip && length > MaxDeflateRatio * gzip.BaseStream.Length)
            throw new ViTScratchException($"IDX file '{name}' declares {count} {what} ({length} bytes), more than its {gzip.BaseStream.Length} compressed bytes " +
                "can hold; the header is corrupt. Delete the file and download it again.");
        return ReadGrowing(stream, name, (int)length, declared);
    }

    /// <summary>Reads exactly <paramref name="length"/> bytes from a stream of unknown length, allocating as the data arrives.</summary>
    private static byte[] ReadGrowing(Stream stream, string name, int length, string declared)
    {
        var data = GC.AllocateUninitializedArray<byte>(Math.Min(length, FirstChunk));
        int filled = 0;
        while (true)
        {
            int want = data.Length - filled;
            int got = ReadUpTo(stream, data.AsSpan(filled, want), name);
            filled += got;
            if (got < want) throw Truncated(name, declared);
            if (filled == length) break;
            var bigger = GC.AllocateUninitializedArray<byte>((int)Math.Min(length, 2L * data.Length));
            data.AsSpan(0, filled).CopyTo(bigger);
            data = bigger;
        }
        Span<byte> probe = stackalloc byte[1];
        if (ReadUpTo(stream, probe, name) != 0)
            throw new ViTScratchException($"IDX file '{name}' holds more data after {declared}; its header or the file is corrupt. " +
                "Delete it and download it again.");
        return data;
    }

    private static int ReadUpTo(Stream stream, Span<byte> buffer, string name)
    {
        try { return stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false); }
        catch (InvalidDataException e)
        {
            throw new ViTScratchException($"'{name}' is a corrupt or incomplete gzip file ({e.Message}). Delete it and download it again.", e);
        }
    }

    private static bool TryReadExactly(Stream stream, Span<byte> buffer, string name) => ReadUpTo(stream, buffer, name) == buffer.Length;

    private static ViTScratchException Truncated(string name, string what) =>
        new($"IDX file '{name}' is truncated: it ends before {what}. The download was probably interrupted: " +
            "delete the file and run again to re-download it, or copy a complete file into the --data directory.");
}
