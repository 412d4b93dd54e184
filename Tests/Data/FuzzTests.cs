using System.Buffers.Binary;
using System.IO.Compression;
using ViTScratch.Tests.TestSupport;
using ViTScratch.Training.Data;
using Xunit;
using Xunit.Abstractions;

namespace ViTScratch.Tests.Data;

/// <summary>
/// Seeded fuzzing of the dataset readers: IDX files (plain and gzip) and CIFAR records with byte
/// flips, truncations, header field edits, appended bytes and damaged gzip streams.
/// </summary>
public class FuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int Seed = FuzzRunner.Seed;
    private readonly TempDir _dir = new();

    // ---- IDX ----------------------------------------------------------------------------------------

    [Fact]
    public void MutatedIdxFilesLoadCorrectlyOrFailWithOneLine()
    {
        var rng0 = new Random(Seed);
        var pixels = new byte[20 * 7 * 5];
        rng0.NextBytes(pixels);
        var labels = Enumerable.Range(0, 20).Select(_ => (byte)rng0.Next(10)).ToArray();
        byte[] images = DataTestUtil.IdxImages(20, 7, 5, pixels), labelFile = DataTestUtil.IdxLabels(labels);
        string path = _dir.Combine("idx");

        var tally = new FuzzRunner(output).Run(1600, salt: 2, path, rng =>
        {
            bool isImages = rng.Next(2) == 0, gzip = rng.Next(2) == 0;
            var (bytes, what) = MutateIdx(isImages ? images : labelFile, rng, gzip);
            File.WriteAllBytes(path, bytes);
            return ((isImages, bytes), $"{(isImages ? "images" : "labels")}, {what}");
        }, c =>
        {
            if (c.isImages)
            {
                var (read, count, rows, cols) = IdxFormat.ReadImages(path);
                byte[] plain = Decompress(c.bytes);
                Assert.Equal([.. plain[4..16]], BigEndian(count, rows, cols));
                Assert.Equal(plain[16..], read);
            }
            else
            {
                var read = IdxFormat.ReadLabels(path);
                byte[] plain = Decompress(c.bytes);
                Assert.Equal([.. plain[4..8]], BigEndian(read.Length));
                Assert.Equal(plain[8..], read);
            }
        }, m => m.Contains("truncated") ? "truncated" : m.Contains("magic") ? "magic" : m.Contains("gzip") ? "gzip"
            : m.Contains("after") || m.Contains("more data") ? "trailing" : m.Contains("compressed bytes") ? "ratio"
            : m.Contains("unusable shape") || m.Contains("declares dimension") ? "dimensions" : "other");

        Assert.True(tally.Loaded >= 100, $"only {tally.Loaded} cases loaded");
        foreach (var stage in new[] { "truncated", "magic", "gzip", "trailing", "ratio", "dimensions" })
            Assert.True(tally.Stages.ContainsKey(stage), $"no case was rejected at stage '{stage}' (stages hit: {string.Join(", ", tally.Stages.Keys)})");
    }

    private static byte[] BigEndian(params int[] values)
    {
        var bytes = new byte[4 * values.Length];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    /// <summary>The bytes as the reader sees them: gunzipped if they start with the gzip magic (only called after a successful read).</summary>
    private static byte[] Decompress(byte[] bytes)
    {
        if (bytes.Length < 2 || bytes[0] != 0x1F || bytes[1] != 0x8B) return bytes;
        using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
        var plain = new MemoryStream();
        gz.CopyTo(plain);
        return plain.ToArray();
    }

    private static (byte[], string) MutateIdx(byte[] good, Random rng, bool gzip)
    {
        int headerLength = good.Length == 4 + 4 + 20 ? 8 : 16;
        byte[] plain = (byte[])good.Clone();
        string what;
        int kind = rng.Next(gzip ? 6 : 5);
        switch (kind)
        {
            case 0:
            {
                int flips = 1 + rng.Next(3);
                int limit = rng.Next(2) == 0 ? headerLength : plain.Length;
                for (int k = 0; k < flips; k++) plain[rng.Next(limit)] ^= (byte)(1 + rng.Next(255));
                what = $"{flips} flips below {limit}";
                break;
            }
            case 1:
            {
                int keep = rng.Next(plain.Length);
                plain = plain[..keep];
                what = $"cut to {keep}";
                break;
            }
            case 2:
            case 3:
            {
                // A header field: magic, or one dimension, set to an edge value.
                int field = rng.Next(headerLength / 4);
                uint value = new uint[] { 0, 1, 5, 7, 19, 21, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2_000_000_000, 0x00000803, 0x00000801, 0x00000802, (uint)rng.Next() }[rng.Next(14)];
                BinaryPrimitives.WriteUInt32BigEndian(plain.AsSpan(4 * field), value);
                what = $"header word {field} = 0x{value:X8}";
                break;
            }
            case 4:
            {
                var extra = new byte[1 + rng.Next(8)];
                rng.NextBytes(extra);
                plain = [.. plain, .. extra];
                what = $"{extra.Length} bytes appended";
                break;
            }
            default:
                what = "intact";
                break;
        }
        if (!gzip) return (plain, what);
        var compressed = DataTestUtil.Gzip(plain);
        if (kind == 5)
        {
            // The compressed stream itself damaged: a flip or a cut anywhere, gzip header and trailer included.
            if (rng.Next(2) == 0) compressed[rng.Next(compressed.Length)] ^= (byte)(1 + rng.Next(255));
            else compressed = compressed[..rng.Next(compressed.Length)];
            what = "gzip stream damaged";
        }
        return (compressed, "gzip, " + what);
    }

    // ---- CIFAR --------------------------------------------------------------------------------------

    [Fact]
    public void MutatedCifarFilesLoadCorrectlyOrFailWithOneLine()
    {
        var rng0 = new Random(Seed + 1);
        var cifar10 = DataTestUtil.CifarRecords(rng0, [[3], [9], [0]], out _);
        var cifar100 = DataTestUtil.CifarRecords(rng0, [[1, 99], [19, 0], [7, 42]], out _);
        string path = _dir.Combine("data_batch_1.bin");

        var tally = new FuzzRunner(output).Run(600, salt: 3, path, rng =>
        {
            bool hundred = rng.Next(2) == 0;
            var bytes = (byte[])(hundred ? cifar100 : cifar10).Clone();
            var layout = hundred ? CifarFormat.Cifar100Fine : CifarFormat.Cifar10;
            string what;
            switch (rng.Next(3))
            {
                case 0:
                    // Flip a label byte or any byte.
                    int at = rng.Next(2) == 0 ? rng.Next(3) * layout.RecordSize + rng.Next(layout.LabelBytes) : rng.Next(bytes.Length);
                    bytes[at] ^= (byte)(1 + rng.Next(255));
                    what = $"flip at {at}";
                    break;
                case 1:
                    int keep = rng.Next(bytes.Length);
                    bytes = bytes[..keep];
                    what = $"cut to {keep}";
                    break;
                default:
                    int n = 1 + rng.Next(rng.Next(2) == 0 ? 8 : layout.RecordSize * 2);
                    bytes = [.. bytes, .. new byte[n]];
                    what = $"{n} bytes appended";
                    break;
            }
            File.WriteAllBytes(path, bytes);
            return ((layout, bytes), (hundred ? "cifar100, " : "cifar10, ") + what);
        }, c =>
        {
            var (layout, bytes) = c;
            var (pixels, labels) = CifarFormat.ReadFiles([path], layout);
            Assert.Equal(bytes.Length / layout.RecordSize, labels.Length);
            for (int r = 0; r < labels.Length; r++)
            {
                Assert.Equal(bytes[r * layout.RecordSize + layout.LabelIndex], labels[r]);
                Assert.True(labels[r] < layout.ClassCount);
                Assert.Equal(bytes.AsSpan(r * layout.RecordSize + layout.LabelBytes, CifarFormat.ImageBytes), pixels.AsSpan(r * CifarFormat.ImageBytes, CifarFormat.ImageBytes));
            }
        }, m => m.Contains("out of range") ? "label" : m.Contains("truncated") ? "truncated" : "other");

        Assert.True(tally.Loaded >= 50, $"only {tally.Loaded} cases loaded");
        Assert.Equal(["label", "truncated"], tally.Stages.Keys.Order());
    }

    public void Dispose() => _dir.Dispose();
}
