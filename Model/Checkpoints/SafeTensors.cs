using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Unicode;
using System.Text.Json;

namespace ViTScratch.Model.Checkpoints;

/// <summary>One float32 tensor of a safetensors file: name, shape (row-major) and values.</summary>
public sealed record SafeTensor(string Name, int[] Shape, float[] Data);

/// <summary>The contents of a safetensors file: tensors in file order and the __metadata__ strings.</summary>
public sealed class SafeTensorsFile
{
    private readonly Dictionary<string, SafeTensor> _byName;

    /// <summary>A file's tensors and metadata; <paramref name="source"/> names it in error messages.</summary>
    public SafeTensorsFile(IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string> metadata, string source = "checkpoint")
    {
        Tensors = tensors;
        Metadata = metadata;
        Source = source;
        _byName = tensors.ToDictionary(t => t.Name);
    }

    /// <summary>The tensors, in file order.</summary>
    public IReadOnlyList<SafeTensor> Tensors { get; }
    /// <summary>The header's __metadata__ strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Where the file came from (its path), for error messages about its contents.</summary>
    public string Source { get; }
    /// <summary>The tensors by name.</summary>
    public IReadOnlyDictionary<string, SafeTensor> ByName => _byName;
}

/// <summary>
/// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors),
/// float32 only. Layout:
///   8 bytes   N, unsigned little-endian
///   N bytes   UTF-8 JSON header: { "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
///             "__metadata__": {"key": "value", ...} }   (optional metadata, strings only)
///   the rest  the data: every tensor's values, row-major, little-endian, at [begin, end) counted
///             from the start of the data. Tensors tile the data exactly: no gaps, no overlaps.
/// The reader validates the whole header against the file before it returns anything, so a bad
/// file gives one clear ViTScratchException and never a partly filled result.
/// </summary>
public static class SafeTensors
{
    /// <summary>The reference implementation's limit; a larger length means a corrupt or foreign file.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The header key of the metadata, as the format defines it.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>The most dimensions a tensor may have; more means a corrupt header (PyTorch tensors rarely pass 8).</summary>
    public const int MaxRank = 32;

    // ---- writing -------------------------------------------------------------------------------

    /// <summary>
    /// Writes the file atomically: into a temporary file in the same directory, flushed to disk,
    /// then renamed over <paramref name="path"/>. A crash mid-write leaves the old file intact.
    /// </summary>
    public static void Write(string path, IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        byte[] header = Header(tensors, metadata); // validates before touching the disk
        try
        {
            Directory.CreateDirectory(dir);
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                WriteTo(stream, header, tensors);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (Exception) { /* best effort; the original error matters */ }
            throw new ViTScratchException($"cannot write checkpoint '{path}': {e.Message}", e);
        }
    }

    /// <summary>The file's bytes in memory (what <see cref="Write"/> puts on disk).</summary>
    public static byte[] Serialize(IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var stream = new MemoryStream();
        WriteTo(stream, Header(tensors, metadata), tensors);
        return stream.ToArray();
    }

    private static void WriteTo(Stream stream, byte[] header, IReadOnlyList<SafeTensor> tensors)
    {
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var t in tensors)
        {
            if (BitConverter.IsLittleEndian) stream.Write(MemoryMarshal.AsBytes(t.Data.AsSpan()));
            else
            {
                // A big-endian host writes byte-swapped copies. Written as a swap (not as per-value
                // little-endian writes, which are right on either host) so that a wrong test of
                // IsLittleEndian scrambles the file on the hosts the tests run on.
                var swapped = new int[t.Data.Length];
                BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<float, int>(t.Data.AsSpan()), swapped);
                stream.Write(MemoryMarshal.AsBytes(swapped.AsSpan()));
            }
        }
    }

    /// <summary>The JSON header, padded with spaces to a multiple of 8 bytes so the data is 8-byte aligned
    /// (as the reference writer does; trailing whitespace is valid JSON).</summary>
    private static byte[] Header(IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>();
        foreach (var t in tensors)
        {
            if (string.IsNullOrEmpty(t.Name) || t.Name == MetadataKey)
                throw new ViTScratchException($"cannot save a tensor named '{t.Name}'");
            if (!names.Add(t.Name)) throw new ViTScratchException($"cannot save two tensors named '{t.Name}'");
            long count = 1;
            foreach (int d in t.Shape)
            {
                if (d < 0) throw new ViTScratchException($"tensor '{t.Name}' has a negative dimension in its shape");
                count *= d;
            }
            if (count != t.Data.Length)
                throw new ViTScratchException($"tensor '{t.Name}' has {t.Data.Length} values but its shape [{string.Join(", ", t.Shape)}] needs {count}");
        }

        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is not null)
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", "F32");
                json.WriteStartArray("shape");
                foreach (int d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += 4L * t.Data.Length;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        while (buffer.Length % 8 != 0) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    // ---- reading -------------------------------------------------------------------------------

    /// <summary>Reads and validates a .safetensors file (header, offsets, shapes); errors name the file.</summary>
    public static SafeTensorsFile Read(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new ViTScratchException($"checkpoint '{path}' does not exist");
            if (info.Length > Array.MaxLength) throw new ViTScratchException($"checkpoint '{path}' is {info.Length} bytes, larger than this reader supports (2 GiB)");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ViTScratchException($"cannot read checkpoint '{path}': {e.Message}", e);
        }
        return Parse(bytes, path);
    }

    /// <summary>
    /// Parses a whole file held in memory; <paramref name="source"/> names it in error messages.
    /// Nothing is allocated for the values before the header has been checked against the length
    /// of <paramref name="bytes"/>, so the values take at most as much memory as the file.
    /// </summary>
    public static SafeTensorsFile Parse(ReadOnlySpan<byte> bytes, string source = "checkpoint")
    {
        // Tensor names and JSON error texts come from the file: keep the message on one line.
        ViTScratchException Bad(string why) => new($"checkpoint '{source}' {ViTScratchException.Printable(why, 2000)}");

        if (bytes.Length < 8)
            throw Bad($"is truncated: {bytes.Length} bytes, fewer than the 8-byte header length that starts a safetensors file");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > MaxHeaderBytes)
            throw Bad($"has an absurd header length of {headerLength} bytes (at most {MaxHeaderBytes}); it is not a safetensors file or it is corrupt");
        if (headerLength > (ulong)(bytes.Length - 8))
            throw Bad($"is truncated: its header length is {headerLength} bytes but only {bytes.Length - 8} bytes follow");
        var headerBytes = bytes.Slice(8, (int)headerLength);
        var data = bytes[(8 + (int)headerLength)..];

        // JsonDocument checks the UTF-8 of the structure but not inside strings, where GetString would throw later.
        if (!Utf8.IsValid(headerBytes))
            throw Bad("has a header that is not valid JSON (its text is not valid UTF-8); the file is corrupt");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(headerBytes.ToArray());
        }
        catch (JsonException e)
        {
            throw Bad($"has a header that is not valid JSON ({e.Message})");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Bad($"has a header that is a JSON {doc.RootElement.ValueKind}, not an object of tensors");

            var metadata = new Dictionary<string, string>();
            var entries = new List<(string Name, int[] Shape, long Begin, long End)>();
            var seen = new HashSet<string>();
            bool sawMetadata = false;
            try
            {
                foreach (var property in doc.RootElement.EnumerateObject())
                {
                    if (property.Name == MetadataKey)
                    {
                        if (sawMetadata) throw Bad("has two __metadata__ entries");
                        sawMetadata = true;
                        ReadMetadata(property.Value, metadata, Bad);
                        continue;
                    }
                    if (!seen.Add(property.Name)) throw Bad($"lists tensor '{Show(property.Name)}' twice");
                    entries.Add(ReadEntry(property.Name, property.Value, data.Length, Bad));
                }
            }
            catch (InvalidOperationException e)
            {
                // Valid UTF-8 can still escape a lone surrogate (\uD800), which System.Text.Json will not unescape.
                throw Bad($"has a header string that is not valid text ({e.Message})");
            }

            CheckTiling(entries, data.Length, Bad);

            // Everything is valid: only now copy values out.
            var tensors = new List<SafeTensor>(entries.Count);
            foreach (var (name, shape, begin, end) in entries)
            {
                var values = new float[(end - begin) / 4];
                var raw = data.Slice((int)begin, (int)(end - begin));
                raw.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
                if (!BitConverter.IsLittleEndian) // the file is little-endian: swap in place (see WriteTo)
                    BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<float, int>(values.AsSpan()), MemoryMarshal.Cast<float, int>(values.AsSpan()));
                tensors.Add(new SafeTensor(name, shape, values));
            }
            return new SafeTensorsFile(tensors, metadata, source);
        }
    }

    private static void ReadMetadata(JsonElement element, Dictionary<string, string> metadata, Func<string, ViTScratchException> bad)
    {
        if (element.ValueKind != JsonValueKind.Object) throw bad($"has a __metadata__ entry that is a JSON {element.ValueKind}, not an object of strings");
        foreach (var item in element.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw bad($"has __metadata__ value '{Show(item.Name)}' that is a JSON {item.Value.ValueKind}; safetensors metadata values are strings");
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!)) throw bad($"has __metadata__ key '{Show(item.Name)}' twice");
        }
    }

    private static (string, int[], long, long) ReadEntry(string name, JsonElement e, int dataLength, Func<string, ViTScratchException> bad)
    {
        if (e.ValueKind != JsonValueKind.Object) throw bad($"describes tensor '{Show(name)}' with a JSON {e.ValueKind}, not an object");
        if (!e.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String)
            throw bad($"gives tensor '{Show(name)}' no \"dtype\" string");
        if (dtype.GetString() != "F32")
            throw bad($"stores tensor '{Show(name)}' as dtype {Show(dtype.GetString()!)}; only F32 (float32) is supported — convert the file to float32 first");

        if (!e.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw bad($"gives tensor '{Show(name)}' no \"shape\" array");
        if (shapeElement.GetArrayLength() > MaxRank)
            throw bad($"gives tensor '{Show(name)}' a shape of {shapeElement.GetArrayLength()} dimensions (at most {MaxRank})");
        var shape = new int[shapeElement.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int dim) || dim < 0)
                throw bad($"gives tensor '{Show(name)}' a shape entry {d.GetRawText()} that is not a non-negative integer");
            shape[i++] = dim;
            count *= dim;
            if (count > int.MaxValue) throw bad($"gives tensor '{Show(name)}' a shape with more than 2^31 elements");
        }

        if (!e.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw bad($"gives tensor '{Show(name)}' no \"data_offsets\" pair [begin, end]");
        long Offset(JsonElement o) => o.ValueKind == JsonValueKind.Number && o.TryGetInt64(out long v) && v >= 0
            ? v : throw bad($"gives tensor '{Show(name)}' a data offset {o.GetRawText()} that is not a non-negative integer");
        long begin = Offset(offsets[0]), end = Offset(offsets[1]);
        if (end < begin) throw bad($"gives tensor '{Show(name)}' data offsets [{begin}, {end}] that end before they begin");
        if (end > dataLength)
            throw bad($"gives tensor '{Show(name)}' data offsets [{begin}, {end}] outside the data, which is {dataLength} bytes long; the file is truncated or corrupt");
        if (end - begin != 4 * count)
            throw bad($"gives tensor '{Show(name)}' of shape [{string.Join(", ", shape)}] ({count} float32 = {4 * count} bytes) data offsets [{begin}, {end}] spanning {end - begin} bytes");
        return (name, shape, begin, end);
    }

    private static string Show(string fromFile) => ViTScratchException.Printable(fromFile);

    /// <summary>The byte ranges, sorted, must start at 0, follow each other without gap or overlap, and end at the end of the file.</summary>
    private static void CheckTiling(List<(string Name, int[] Shape, long Begin, long End)> entries, int dataLength, Func<string, ViTScratchException> bad)
    {
        var sorted = entries.OrderBy(x => x.Begin).ThenBy(x => x.End).ToList();
        long expected = 0;
        string previous = "the start of the data";
        foreach (var (name, _, begin, end) in sorted)
        {
            if (begin < expected) throw bad($"has overlapping tensors: '{Show(name)}' begins at byte {begin}, before {previous} ends at byte {expected}");
            if (begin > expected) throw bad($"has a gap in its data: bytes [{expected}, {begin}) between {previous} and '{Show(name)}' belong to no tensor");
            expected = end;
            previous = $"'{Show(name)}'";
        }
        if (expected != dataLength)
            throw bad($"has {dataLength - expected} bytes of data after {previous} that belong to no tensor (data is {dataLength} bytes, tensors cover {expected})");
    }
}
