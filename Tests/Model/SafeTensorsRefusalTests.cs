using System.Buffers.Binary;
using System.Text;
using ViTScratch.Model.Checkpoints;
using static ViTScratch.Tests.Model.SafeTensorsTests;

namespace ViTScratch.Tests.Model;

/// <summary>
/// Every refusal of the safetensors reader and writer by the words of its message, and each limit
/// from both sides (at the limit: accepted or refused for another reason; one past it: refused by
/// the limit). SafeTensorsTests covers the common malformed files; this covers the rest, so that a
/// refusal with its message emptied, its throw dropped or its comparison moved by one fails a test
/// (Stryker found these uncovered: docs/testing.md).
/// </summary>
public class SafeTensorsRefusalTests : ModelTestBase
{
    private const string Source = "/runs/r/bad.safetensors";
    private readonly string _dir = Directory.CreateTempSubdirectory("vit-str-").FullName;

    private static ViTScratchException Refused(byte[] bytes, params string[] expected)
    {
        var e = Assert.Throws<ViTScratchException>(() => SafeTensors.Parse(bytes, Source));
        Assert.StartsWith($"checkpoint '{Source}' ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        foreach (var s in expected) Assert.Contains(s, e.Message);
        return e;
    }

    /// <summary>One F32 tensor "a" with the given JSON for its shape and offsets, and that many data bytes.</summary>
    private static byte[] Tensor(string shape, string offsets, int dataBytes) =>
        Raw($"{{\"a\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":{offsets}}}}}", dataBytes);

    // ---- the header as a whole ---------------------------------------------------------------------

    [Fact]
    public void HeaderLengthAtTheLimitIsNotAbsurd()
    {
        // Exactly MaxHeaderBytes is allowed by the limit; this file is then too short for it.
        Refused(Raw("{}", 0, claimedHeaderLength: (ulong)SafeTensors.MaxHeaderBytes),
            "is truncated: its header length is 100000000 bytes but only 2 bytes follow");
        Refused(Raw("{}", 0, claimedHeaderLength: (ulong)SafeTensors.MaxHeaderBytes + 1),
            "has an absurd header length of 100000001 bytes (at most 100000000)");
    }

    [Fact]
    public void HeaderLengthAgainstWhatFollows()
    {
        Assert.Empty(SafeTensors.Parse(Raw("{}", 0), Source).Tensors); // exactly the bytes that follow
        Refused(Raw("{}", 0, claimedHeaderLength: 3), "is truncated: its header length is 3 bytes but only 2 bytes follow");
        // Eight bytes are a whole length prefix: an empty header is then not JSON, not a short file.
        Refused(new byte[8], "has a header that is not valid JSON (");
        Refused(new byte[7], "is truncated: 7 bytes, fewer than the 8-byte header length that starts a safetensors file");
    }

    [Fact]
    public void InvalidUtf8InsideAStringIsNamed()
    {
        // {"a\xFF": ...}: the JSON structure is fine; only the text inside the name is not UTF-8.
        var header = Encoding.UTF8.GetBytes("{\"a?\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        header[3] = 0xFF;
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        Refused(bytes, "has a header that is not valid JSON (its text is not valid UTF-8)");
    }

    [Fact]
    public void AnEscapedLoneSurrogateIsNamed() =>
        Refused(Raw("{\"a\\uD800\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0), "has a header string that is not valid text");

    // ---- metadata ------------------------------------------------------------------------------------

    [Fact] public void TwoMetadataBlocks() => Refused(Raw("{\"__metadata__\":{},\"__metadata__\":{}}", 0), "has two __metadata__ entries");

    [Fact] public void MetadataThatIsNotAnObject() => Refused(Raw("{\"__metadata__\":[1]}", 0), "has a __metadata__ entry that is a JSON Array, not an object of strings");

    [Fact] public void MetadataKeyTwice() => Refused(Raw("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0), "has __metadata__ key 'k' twice");

    [Fact]
    public void MetadataValueThatIsNotAString() =>
        Refused(Raw("{\"__metadata__\":{\"step\":3}}", 0), "has __metadata__ value 'step' that is a JSON Number; safetensors metadata values are strings");

    // ---- one tensor's entry ------------------------------------------------------------------------------

    [Fact] public void EntryThatIsNotAnObject() => Refused(Raw("{\"a\":7}", 0), "describes tensor 'a' with a JSON Number, not an object");

    [Fact] public void NoDtype() => Refused(Raw("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "gives tensor 'a' no \"dtype\" string");

    [Fact] public void DtypeThatIsNotAString() => Refused(Raw("{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "gives tensor 'a' no \"dtype\" string");

    [Fact]
    public void OtherDtypesAreNamedWithTheFix() =>
        Refused(Raw("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4),
            "stores tensor 'a' as dtype F16; only F32 (float32) is supported — convert the file to float32 first");

    [Fact] public void NoShape() => Refused(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":7,\"data_offsets\":[0,4]}}", 4), "gives tensor 'a' no \"shape\" array");

    [Fact]
    public void RankAtTheLimitIsAccepted()
    {
        string ones(int n) => "[" + string.Join(",", Enumerable.Repeat("1", n)) + "]";
        var file = SafeTensors.Parse(Tensor(ones(SafeTensors.MaxRank), "[0,4]", 4), Source);
        Assert.Equal(SafeTensors.MaxRank, file.ByName["a"].Shape.Length);
        Refused(Tensor(ones(SafeTensors.MaxRank + 1), "[0,4]", 4), "gives tensor 'a' a shape of 33 dimensions (at most 32)");
    }

    [Fact]
    public void NegativeShapeEntry() => Refused(Tensor("[2,-1]", "[0,8]", 8), "gives tensor 'a' a shape entry -1 that is not a non-negative integer");

    [Fact]
    public void ElementCountAtTheLimitIsNotRefusedByTheLimit()
    {
        // int.MaxValue elements pass the count limit and are refused by their offsets; one more does not pass.
        Refused(Tensor("[2147483647]", "[0,4]", 4), "(2147483647 float32 = 8589934588 bytes) data offsets [0, 4] spanning 4 bytes");
        Refused(Tensor("[65536,32768]", "[0,4]", 4), "gives tensor 'a' a shape with more than 2^31 elements");
    }

    [Fact]
    public void ByteCountAgainstTheShape()
    {
        // A second tensor (not starting at 0) of rank 2: the message shows the whole shape and the span.
        var header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,12]}}";
        Refused(Raw(header, 12), "gives tensor 'b' of shape [2, 3] (6 float32 = 24 bytes) data offsets [4, 12] spanning 8 bytes");
    }

    [Fact]
    public void OffsetsThatAreNotAPair()
    {
        Refused(Tensor("[1]", "[0,4,8]", 8), "gives tensor 'a' no \"data_offsets\" pair [begin, end]");
        Refused(Tensor("[1]", "{}", 4), "gives tensor 'a' no \"data_offsets\" pair [begin, end]");
        Refused(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "gives tensor 'a' no \"data_offsets\" pair [begin, end]");
    }

    [Fact]
    public void OffsetThatIsNotANumber() => Refused(Tensor("[1]", "[0,\"4\"]", 4), "gives tensor 'a' a data offset \"4\" that is not a non-negative integer");

    [Fact]
    public void OffsetsInTheFileAreAccepted()
    {
        // The end may be exactly the data's length; one byte past it is outside.
        Assert.Single(SafeTensors.Parse(Tensor("[2]", "[0,8]", 8), Source).Tensors);
        Refused(Tensor("[2]", "[4,12]", 8), "gives tensor 'a' data offsets [4, 12] outside the data, which is 8 bytes long; the file is truncated or corrupt");
        Refused(Tensor("[2]", "[8,4]", 8), "gives tensor 'a' data offsets [8, 4] that end before they begin");
    }

    // ---- the tiling of the data ------------------------------------------------------------------------

    [Fact]
    public void TilingMessages()
    {
        string two(string a, string b) =>
            $"{{\"a\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{a}}},\"b\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{b}}}}}";
        Refused(Raw(two("[0,4]", "[0,4]"), 4), "has overlapping tensors: 'b' begins at byte 0, before 'a' ends at byte 4");
        Refused(Raw(two("[4,8]", "[8,12]"), 12), "has a gap in its data: bytes [0, 4) between the start of the data and 'a' belong to no tensor");
        Refused(Raw(two("[0,4]", "[8,12]"), 12), "has a gap in its data: bytes [4, 8) between 'a' and 'b' belong to no tensor");
        Refused(Raw(two("[0,4]", "[4,8]"), 10), "has 2 bytes of data after 'b' that belong to no tensor (data is 10 bytes, tensors cover 8)");
        // An empty tensor may share its start with another, before it or after it in the header.
        const string Full = "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
        const string Empty = "\"e\":{\"dtype\":\"F32\",\"shape\":[0,2],\"data_offsets\":[0,0]}";
        Assert.Equal(2, SafeTensors.Parse(Raw($"{{{Full},{Empty}}}", 4), Source).Tensors.Count);
        Assert.Equal(2, SafeTensors.Parse(Raw($"{{{Empty},{Full}}}", 4), Source).Tensors.Count);
        // The check sorts by where tensors begin, so the header's order does not matter; the
        // tensors come back in the header's order, each with its own bytes.
        var file = SafeTensors.Parse(Raw(two("[4,8]", "[0,4]"), 8), Source);
        Assert.Equal(["a", "b"], file.Tensors.Select(t => t.Name));
        Assert.Equal(BinaryPrimitives.ReadSingleLittleEndian([29, 36, 43, 50]), file.ByName["a"].Data[0]); // Raw's bytes 4-7: 7i + 1
        Assert.Equal(BinaryPrimitives.ReadSingleLittleEndian([1, 8, 15, 22]), file.ByName["b"].Data[0]);
    }

    // ---- the writer ---------------------------------------------------------------------------------------

    [Fact]
    public void WriterRefusalsNameTheTensor()
    {
        string path = Path.Combine(_dir, "never.safetensors");
        Assert.Equal("cannot save a tensor named ''", Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [new SafeTensor("", [1], [1f])])).Message);
        Assert.Equal("cannot save a tensor named '__metadata__'",
            Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [new SafeTensor(SafeTensors.MetadataKey, [1], [1f])])).Message);
        Assert.Equal("tensor 'a' has 3 values but its shape [2, 2] needs 4",
            Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [new SafeTensor("a", [2, 2], new float[3])])).Message);
        Assert.Equal("tensor 'a' has a negative dimension in its shape",
            Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [new SafeTensor("a", [-2, -2], new float[4])])).Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void WriteCreatesTheDirectory()
    {
        string path = Path.Combine(_dir, "runs", "new", "last.safetensors");
        SafeTensors.Write(path, [new SafeTensor("a", [1], [2f])]);
        Assert.Equal([2f], SafeTensors.Read(path).ByName["a"].Data);
    }

    [Fact]
    public void AFailedWriteIsNamedAndLeavesNothingBehind()
    {
        // The checkpoint's directory is a regular file, so the directory cannot be created.
        string blocker = Path.Combine(_dir, "blocker");
        File.WriteAllText(blocker, "x");
        string path = Path.Combine(blocker, "last.safetensors");
        var e = Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [new SafeTensor("a", [1], [1f])]));
        Assert.StartsWith($"cannot write checkpoint '{path}': ", e.Message);
        Assert.IsAssignableFrom<IOException>(e.InnerException);
        Assert.Equal([blocker], Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void AFailedWriteRemovesItsTemporaryFile()
    {
        // The target is a non-empty directory: the temporary file is written, the rename fails.
        string path = Path.Combine(_dir, "last.safetensors");
        Directory.CreateDirectory(Path.Combine(path, "inside"));
        var e = Assert.Throws<ViTScratchException>(() => SafeTensors.Write(path, [new SafeTensor("a", [1], [1f])]));
        Assert.StartsWith($"cannot write checkpoint '{path}': ", e.Message);
        Assert.Equal([path], Directory.GetFileSystemEntries(_dir));
    }

    // ---- reading from disk ----------------------------------------------------------------------------------

    [Fact]
    public void AFileTooLargeToReadIsRefusedWithoutReadingIt()
    {
        // A sparse file one byte longer than the largest array: no disk space, and nothing is read.
        string path = Path.Combine(_dir, "huge.safetensors");
        using (var f = new FileStream(path, FileMode.CreateNew)) f.SetLength((long)Array.MaxLength + 1);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ViTScratchException>(() => SafeTensors.Read(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 1 << 20);
        Assert.Equal($"checkpoint '{path}' is {(long)Array.MaxLength + 1} bytes, larger than this reader supports (2 GiB)", e.Message);
    }

    [Fact]
    public void AFileThatCannotBeReadIsNamed()
    {
        // Another handle holds the file exclusively (.NET's share modes, enforced on Linux too).
        string path = Path.Combine(_dir, "locked.safetensors");
        SafeTensors.Write(path, [new SafeTensor("a", [1], [1f])]);
        using var holder = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        var e = Assert.Throws<ViTScratchException>(() => SafeTensors.Read(path));
        Assert.StartsWith($"cannot read checkpoint '{path}': ", e.Message);
        Assert.IsAssignableFrom<IOException>(e.InnerException);
    }

    public override void Dispose()
    {
        base.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
