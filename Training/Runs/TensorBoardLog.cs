using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace ViTScratch.Training.Runs;

/// <summary>
/// TensorBoard event files, so `tensorboard --logdir runs` shows every run's curves. Each `vit
/// train` process appends to one file, runs/NAME/events.out.tfevents.SECONDS.HOST.PID.vit; a
/// resumed run starts a new file beside the old ones, and TensorBoard reads them all, in order.
///
/// The format, written by hand because it is small enough to read in one sitting:
///   a TFRecord per event:  uint64 length | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data
///   (little-endian; masked(c) = ((c &gt;&gt; 15) | (c &lt;&lt; 17)) + 0xa282ead8)
///   data: a protobuf Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
///   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
/// The first event carries file_version "brain.Event:2" and no summary, as TensorFlow's writer does.
/// A record cut short by a crash is the last one in its file; TensorBoard stops reading there.
/// </summary>
internal sealed class TensorBoardLog
{
    private readonly string _path;

    public TensorBoardLog(string runDirectory)
    {
        long seconds = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        _path = System.IO.Path.Combine(runDirectory, $"{FilePrefix}{seconds}.{Environment.MachineName}.{Environment.ProcessId}.vit");
    }

    /// <summary>Every event file starts with this; TensorBoard finds them by the "tfevents" in it.</summary>
    public const string FilePrefix = "events.out.tfevents.";

    public string Path => _path;

    /// <summary>Appends one event with the scalars (tag → value) at <paramref name="step"/>; NaN values are left out.</summary>
    public void Scalars(long step, IEnumerable<(string Tag, double Value)> scalars)
    {
        using var file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
        if (file.Length == 0) WriteRecord(file, Event(step: 0, fileVersion: "brain.Event:2", values: []));
        WriteRecord(file, Event(step, fileVersion: null, scalars.Where(s => !double.IsNaN(s.Value)).ToList()));
        file.Flush(flushToDisk: true);
    }

    // ---- the TFRecord frame ----------------------------------------------------------------------

    private static void WriteRecord(Stream s, byte[] data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc(data));
        s.Write(header);
        s.Write(data);
        s.Write(footer);
    }

    /// <summary>CRC-32C (Castagnoli; the SSE4.2 crc32 instruction where the CPU has it), masked as TFRecord wants.</summary>
    public static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }

    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    // ---- the protobuf messages ---------------------------------------------------------------------

    private static byte[] Event(long step, string? fileVersion, IReadOnlyList<(string Tag, double Value)> values)
    {
        var e = new MemoryStream();
        Tag(e, 1, wireType: 1); // wall_time: double, 64-bit
        Span<byte> d = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(d, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        e.Write(d);
        Tag(e, 2, wireType: 0); // step: int64, varint
        Varint(e, (ulong)step);
        if (fileVersion is not null) Bytes(e, 3, Encoding.UTF8.GetBytes(fileVersion));
        if (values.Count > 0)
        {
            var summary = new MemoryStream();
            Span<byte> f = stackalloc byte[4];
            foreach (var (tag, value) in values)
            {
                var v = new MemoryStream();
                Bytes(v, 1, Encoding.UTF8.GetBytes(tag));
                Tag(v, 2, wireType: 5); // simple_value: float, 32-bit
                BinaryPrimitives.WriteSingleLittleEndian(f, (float)value);
                v.Write(f);
                Bytes(summary, 1, v.ToArray());
            }
            Bytes(e, 5, summary.ToArray());
        }
        return e.ToArray();
    }

    private static void Tag(Stream s, int field, int wireType) => Varint(s, (ulong)((field << 3) | wireType));

    private static void Bytes(Stream s, int field, byte[] bytes)
    {
        Tag(s, field, wireType: 2); // length-delimited
        Varint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static void Varint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }
}
