using System.Buffers.Binary;
using Google.Protobuf;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// The TensorBoard event files: read back with an independent protobuf decoder (Google.Protobuf's
/// CodedInputStream) and CRC-32C checked against its published check value, they hold every
/// epoch's scalars of metrics.csv, across a resume.
/// </summary>
public class TensorBoardLogTests : IDisposable
{
    private readonly TempDir _dir = new();

    [Fact]
    public void Crc32CMatchesItsCheckValueAndABitwiseReference()
    {
        Assert.Equal(0xE3069283u, TensorBoardLog.Crc32C("123456789"u8)); // the CRC catalogue's check value for CRC-32C
        Assert.Equal(0xE3069283u, ReferenceCrc32C("123456789"u8));
        var bytes = new byte[1000];
        new Random(1).NextBytes(bytes);
        Assert.Equal(ReferenceCrc32C(bytes), TensorBoardLog.Crc32C(bytes));
    }

    // The textbook bit-at-a-time CRC-32C (reflected polynomial 0x82F63B78) and TFRecord's mask,
    // written here independently of the production code they check.
    private static uint ReferenceCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
        }
        return ~crc;
    }

    private static uint ReferenceMaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = ReferenceCrc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8);
    }

    /// <summary>Every (step, tag, value) in a TFRecord file of Events, each record's two CRCs verified.</summary>
    internal static List<(long Step, string Tag, float Value)> Read(string path, List<string>? fileVersions = null)
    {
        var bytes = File.ReadAllBytes(path);
        var scalars = new List<(long, string, float)>();
        int at = 0;
        while (at < bytes.Length)
        {
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)), ReferenceMaskedCrc(bytes.AsSpan(at, 8)));
            var data = bytes.AsSpan(at + 12, (int)length).ToArray();
            Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)length)), ReferenceMaskedCrc(data));
            at += 16 + (int)length;

            var e = new CodedInputStream(data);
            long step = 0;
            double wallTime = 0;
            uint tag;
            while ((tag = e.ReadTag()) != 0)
                switch (WireFormat.GetTagFieldNumber(tag))
                {
                    case 1: wallTime = e.ReadDouble(); break;
                    case 2: step = e.ReadInt64(); break;
                    case 3: string version = e.ReadString(); fileVersions?.Add(version); break;
                    case 5:
                        var summary = new CodedInputStream(e.ReadBytes().ToByteArray());
                        while ((tag = summary.ReadTag()) != 0)
                        {
                            var value = new CodedInputStream(summary.ReadBytes().ToByteArray());
                            string name = "";
                            float v = float.NaN;
                            while ((tag = value.ReadTag()) != 0)
                                if (WireFormat.GetTagFieldNumber(tag) == 1) name = value.ReadString();
                                else v = value.ReadFloat();
                            scalars.Add((step, name, v));
                        }
                        break;
                    default: e.SkipLastField(); break;
                }
            Assert.InRange(wallTime, 1.7e9, 4e9); // seconds since 1970, in this century
        }
        return scalars;
    }

    [Fact]
    public void EveryEpochsScalarsAreInTheEventFilesAcrossAResume()
    {
        TinyFashionMnist.Write(_dir.Combine("data"));
        var o = new TrainOptions
        {
            Dataset = "fashion-mnist", DataDir = _dir.Combine("data"), Model = "vit-micro", Patch = 7, Epochs = 3, BatchSize = 32,
            Device = "cpu", Workers = 1, ValSplit = 0.2f, OutDir = _dir.Combine("run"),
        };
        using (var cancel = new CancellationTokenSource())
        using (var first = new Trainer(o, TextWriter.Null))
        {
            first.StepCompleted += step => { if (step == 3) cancel.Cancel(); }; // during epoch 2
            Assert.False(first.Run(cancel.Token));
        }
        Thread.Sleep(1100); // a new file per process start: names carry the second
        List<EpochMetrics> metrics;
        using (var resumed = new Trainer(o, TextWriter.Null, resumeFrom: _dir.Combine("run", "last.safetensors")))
        {
            Assert.True(resumed.Run(CancellationToken.None));
            metrics = resumed.Metrics.ToList();
        }

        var files = Directory.GetFiles(_dir.Combine("run"), "events.out.tfevents.*").Order().ToList();
        Assert.Equal(2, files.Count);
        var versions = new List<string>();
        var scalars = files.SelectMany(f => Read(f, versions)).ToList();
        Assert.Equal(["brain.Event:2", "brain.Event:2"], versions);
        foreach (var m in metrics)
        {
            float At(string tag) => scalars.Single(s => s.Step == m.Epoch && s.Tag == tag).Value;
            Assert.Equal((float)m.TrainLoss, At("train/loss"));
            Assert.Equal((float)m.ValAccuracy, At("val/accuracy"));
            Assert.Equal((float)m.Lr, At("lr"));
        }
        Assert.DoesNotContain(scalars, s => s.Tag.StartsWith("test/", StringComparison.Ordinal)); // not measured during training
        Assert.Equal([1, 2, 3], scalars.Select(s => s.Step).Distinct().Order());
    }

    [Fact]
    public void AFlippedByteFailsItsRecordsCrc()
    {
        var log = new TensorBoardLog(_dir.Path);
        log.Scalars(7, [("val/accuracy", 0.5)]);
        Assert.Single(Read(log.Path));
        var bytes = File.ReadAllBytes(log.Path);
        bytes[^6] ^= 0x10; // inside the last record's data
        File.WriteAllBytes(log.Path, bytes);
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => Read(log.Path));
    }

    public void Dispose() => _dir.Dispose();
}
