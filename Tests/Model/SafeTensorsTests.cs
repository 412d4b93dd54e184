using System.Buffers.Binary;
using System.Text;
using ViTScratch.Model.Checkpoints;

namespace ViTScratch.Tests.Model;

/// <summary>The safetensors reader and writer on their own, including every malformed-file case.</summary>
public class SafeTensorsTests : ModelTestBase
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vit-st-").FullName;

    private SafeTensor RandomTensor(string name, params int[] shape) =>
        new(name, shape, RandomValues(shape.Aggregate(1, (a, b) => a * b)));

    private string WriteBytes(byte[] bytes, string name = "bad.safetensors")
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A file with a hand-written header followed by <paramref name="dataBytes"/> bytes of data.</summary>
    internal static byte[] Raw(string header, int dataBytes, ulong? claimedHeaderLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimedHeaderLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++) bytes[8 + h.Length + i] = (byte)(i * 7 + 1);
        return bytes;
    }

    private void AssertRejected(byte[] bytes, params string[] expected)
    {
        var e = Assert.Throws<ViTScratchException>(() => SafeTensors.Read(WriteBytes(bytes)));
        foreach (var s in expected) Assert.Contains(s, e.Message);
    }

    [Fact]
    public void RoundTripIsExact()
    {
        var tensors = new List<SafeTensor> { RandomTensor("a.weight", 7, 5), RandomTensor("b", 1), RandomTensor("scalar"), RandomTensor("c.bias", 65), RandomTensor("empty", 0, 3) };
        var metadata = new Dictionary<string, string> { ["step"] = "129", ["note"] = "quotes \" and \\ and\nnewline, ünïcødé ✓", ["empty"] = "" };
        string path = Path.Combine(_dir, "ok.safetensors");
        SafeTensors.Write(path, tensors, metadata);

        var file = SafeTensors.Read(path);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(tensors.Select(t => t.Name), file.Tensors.Select(t => t.Name));
        foreach (var t in tensors)
        {
            Assert.Equal(t.Shape, file.ByName[t.Name].Shape);
            Assert.Equal(t.Data, file.ByName[t.Name].Data); // exact float equality: bits are copied
        }
        // Writing what was read reproduces the file byte for byte, header and metadata order included.
        Assert.Equal(File.ReadAllBytes(path), SafeTensors.Serialize(file.Tensors, file.Metadata));
        // Data starts 8-byte aligned, as the reference writer arranges.
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path)) % 8);
        // The atomic write leaves no temporary file behind.
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void HeaderHasTheStandardLayout()
    {
        var bytes = SafeTensors.Serialize([new SafeTensor("w", [2, 3], [1, 2, 3, 4, 5, 6]), new SafeTensor("b", [2], [7, 8])], new Dictionary<string, string> { ["k"] = "v" });
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal("{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}",
            Encoding.UTF8.GetString(bytes, 8, n).TrimEnd(' '));
        Assert.Equal(8 + n + 32, bytes.Length);
        Assert.Equal(3f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(8 + n + 8)));
    }

    [Fact]
    public void OverwritesAtomically()
    {
        string path = Path.Combine(_dir, "x.safetensors");
        SafeTensors.Write(path, [RandomTensor("a", 3)]);
        var second = RandomTensor("b", 4);
        SafeTensors.Write(path, [second]);
        Assert.Equal(second.Data, SafeTensors.Read(path).ByName["b"].Data);
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void WriterRejectsInconsistentTensors()
    {
        string path = Path.Combine(_dir, "never.safetensors");
        Assert.Contains("'a'", Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [new SafeTensor("a", [2, 2], new float[3])])).Message);
        Assert.Contains("two tensors named 'a'", Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [RandomTensor("a", 1), RandomTensor("a", 1)])).Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact] public void Missing() => Assert.Contains("does not exist", Assert.Throws<ViTScratchException>(() => SafeTensors.Read(Path.Combine(_dir, "nope"))).Message);

    [Fact] public void ShorterThanTheLengthPrefix() => AssertRejected([1, 2, 3, 0, 0], "truncated", "5 bytes");

    [Fact] public void EmptyFile() => AssertRejected([], "truncated", "0 bytes");

    [Fact]
    public void HeaderCutShort()
    {
        var good = SafeTensors.Serialize([RandomTensor("a", 5)]);
        AssertRejected(good[..20], "truncated", "only 12 bytes follow");
    }

    [Fact]
    public void DataCutShort()
    {
        var good = SafeTensors.Serialize([RandomTensor("a", 3), RandomTensor("b", 4)]);
        AssertRejected(good[..^3], "'b'", "outside the data", "truncated");
    }

    [Fact] public void AbsurdHeaderLength() => AssertRejected(Raw("{}", 0, claimedHeaderLength: 1UL << 40), "absurd header length", (1UL << 40).ToString());

    [Fact] public void HugeButPlausibleHeaderLength() => AssertRejected(Raw("{}", 0, claimedHeaderLength: 50_000_000), "truncated", "50000000");

    [Fact] public void HeaderNotJson() => AssertRejected(Raw("this is not json", 0), "not valid JSON");

    [Fact] public void HeaderNotUtf8() => AssertRejected([.. Raw("{\"a\":1}", 0)[..10], 0xFF, 0xFE, .. Raw("{\"a\":1}", 0)[12..]], "not valid JSON");

    [Fact] public void HeaderNotAnObject() => AssertRejected(Raw("[1, 2]", 0), "Array", "not an object");

    [Fact]
    public void UnsupportedDtypeIsNamed() =>
        AssertRejected(Raw("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4), "'w'", "BF16", "only F32");

    [Fact]
    public void OffsetsOutsideTheFile() =>
        AssertRejected(Raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), "'w'", "[0, 16]", "8 bytes");

    [Fact]
    public void OffsetsBackwards() =>
        AssertRejected(Raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8), "'w'", "end before they begin");

    [Fact]
    public void NegativeOffset() =>
        AssertRejected(Raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4), "'w'", "-4");

    [Fact]
    public void OverlappingTensors() =>
        AssertRejected(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
            "overlapping", "'b'", "'a'");

    [Fact]
    public void GapBetweenTensors() =>
        AssertRejected(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20),
            "gap", "[8, 12)");

    [Fact]
    public void TrailingBytesNotCovered() =>
        AssertRejected(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 13), "5 bytes of data after 'a'");

    [Fact]
    public void ShapeDisagreesWithOffsets() =>
        AssertRejected(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "'a'", "[3]", "12 bytes", "spanning 8");

    [Fact]
    public void BadShapeEntry() =>
        AssertRejected(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8), "'a'", "2.5");

    [Fact]
    public void MissingFields() =>
        AssertRejected(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8), "'a'", "data_offsets");

    [Fact]
    public void DuplicateTensorName() =>
        AssertRejected(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "'a' twice");

    [Fact]
    public void MetadataValuesMustBeStrings() =>
        AssertRejected(Raw("{\"__metadata__\":{\"step\":3}}", 0), "__metadata__", "'step'");

    public override void Dispose()
    {
        base.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
