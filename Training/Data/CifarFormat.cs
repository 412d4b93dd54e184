namespace ViTScratch.Training.Data;

/// <summary>
/// Reader for the CIFAR-10 / CIFAR-100 "binary version" files.
///
/// Each file is a sequence of fixed-size records with no header: CIFAR-10 records are 3073
/// bytes (1 label byte, then 3072 pixels); CIFAR-100 records are 3074 bytes (coarse label, fine
/// label, then 3072 pixels). The 3072 pixels are 1024 red, 1024 green, 1024 blue values, each
/// plane a row-major 32x32 image — i.e. exactly CHW, so pixels are copied as they are.
/// </summary>
internal static class CifarFormat
{
    public const int ImageBytes = 3 * 32 * 32;

    /// <summary>How a record starts: how many label bytes, and which one is the label we keep.</summary>
    public readonly record struct Layout(int LabelBytes, int LabelIndex, int ClassCount)
    {
        public int RecordSize => LabelBytes + ImageBytes;
    }

    public static readonly Layout Cifar10 = new(1, 0, 10);
    /// <summary>CIFAR-100 keeping the fine label (100 classes). Index 0 would be the 20 coarse classes.</summary>
    public static readonly Layout Cifar100Fine = new(2, 1, 100);

    /// <summary>
    /// Reads all records of the given files, in order, into one pixel and one label array. The
    /// file lengths are checked (whole records, and a total that fits one array) before anything is
    /// allocated, and the records are read straight into the result, so the peak memory is the
    /// dataset itself.
    /// </summary>
    public static (byte[] Pixels, byte[] Labels) ReadFiles(IReadOnlyList<string> paths, Layout layout)
    {
        var lengths = new long[paths.Count];
        long records = 0;
        for (int f = 0; f < paths.Count; f++)
        {
            lengths[f] = Length(paths[f]);
            CheckWholeRecords(paths[f], lengths[f], layout);
            records += lengths[f] / layout.RecordSize;
        }
        if (records * ImageBytes > Array.MaxLength)
            throw new ViTScratchException($"The CIFAR files hold {records} records, more than fit in memory as one array.");

        var pixels = GC.AllocateUninitializedArray<byte>((int)(records * ImageBytes));
        var labels = new byte[records];
        var record = new byte[layout.RecordSize];
        int r = 0;
        for (int f = 0; f < paths.Count; f++)
        {
            using var stream = Open(paths[f]);
            if (stream.Length != lengths[f]) throw new ViTScratchException($"CIFAR file '{paths[f]}' changed while it was being read; run again.");
            for (long i = 0; i < lengths[f] / layout.RecordSize; i++, r++)
            {
                if (stream.ReadAtLeast(record, record.Length, throwOnEndOfStream: false) != record.Length)
                    throw new ViTScratchException($"CIFAR file '{paths[f]}' ended early, at record {i}; it changed while it was being read. Run again.");
                byte label = record[layout.LabelIndex];
                if (label >= layout.ClassCount)
                    throw new ViTScratchException(
                        $"CIFAR file '{paths[f]}', record {i}: label {label} is out of range 0..{layout.ClassCount - 1}. " +
                        "The file is corrupt or is from the other CIFAR variant (CIFAR-10 records are 3073 bytes, CIFAR-100 3074). " +
                        "Delete it and re-download, or point --data at the right dataset.");
                labels[r] = label;
                record.AsSpan(layout.LabelBytes).CopyTo(pixels.AsSpan(r * ImageBytes, ImageBytes));
            }
        }
        return (pixels, labels);
    }

    private static void CheckWholeRecords(string path, long length, Layout layout)
    {
        if (length == 0 || length % layout.RecordSize != 0)
            throw new ViTScratchException(
                $"CIFAR file '{path}' is truncated or is not a CIFAR binary file: its {length} bytes are not a whole number " +
                $"of {layout.RecordSize}-byte records ({length / layout.RecordSize} full records and {length % layout.RecordSize} extra bytes). " +
                "Delete the extracted directory (and the .tar.gz next to it) and run again to re-download, or point --data at a complete copy.");
    }

    /// <summary>Longest class-names file read; the real ones are under 1 KB.</summary>
    private const long MaxClassNamesBytes = 1 << 20;

    /// <summary>Reads class names, one per non-empty line (batches.meta.txt / fine_label_names.txt).</summary>
    public static string[] ReadClassNames(string path)
    {
        long length = Length(path);
        if (length > MaxClassNamesBytes)
            throw new ViTScratchException($"CIFAR class-names file '{path}' is {length} bytes, not a list of class names; delete it and re-download.");
        try { return File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray(); }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ViTScratchException($"Cannot read CIFAR file '{path}': {e.Message}. Check its permissions.", e);
        }
    }

    private static long Length(string path)
    {
        using var stream = Open(path);
        return stream.Length;
    }

    private static FileStream Open(string path)
    {
        try { return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ViTScratchException($"CIFAR file '{path}' is missing. Delete the partial dataset directory and run again to re-download, " +
                "or point --data at a directory with the complete extracted archive.", e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ViTScratchException($"Cannot read CIFAR file '{path}': {e.Message}. Check its permissions.", e);
        }
    }
}
