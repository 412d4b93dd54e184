using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.Model;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;
using Xunit;
using Xunit.Abstractions;

namespace ViTScratch.Tests.Data;

/// <summary>
/// Seeded fuzzing of every reader of user files: valid training checkpoints, IDX files (plain and
/// gzip) and CIFAR records are mutated (byte flips, truncations, header field edits) and read.
/// Each case must end in a correct load or one ViTScratchException line naming the file; never
/// another exception, a hang, or a large allocation. A failing case prints its index and
/// mutation, and the same seed replays it.
/// </summary>
public class FuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int Seed = 20250117;

    /// <summary>The largest valid input here is under 100 KB and a correct load allocates well under 1 MB.</summary>
    private const long CaseAllocationBound = 32 << 20;

    private static readonly TimeSpan CaseTimeBound = TimeSpan.FromSeconds(5), RunTimeBound = TimeSpan.FromSeconds(120);

    private readonly TempDir _dir = new();
    private readonly Device _device = Device.Create("cpu");

    /// <summary>Outcome counts and the first failures of one fuzz run.</summary>
    private sealed class Tally
    {
        public int Loaded, Rejected;
        public readonly Dictionary<string, (int Count, string Example)> Stages = [];
        public readonly List<string> Failures = [];
        public TimeSpan Slowest;
    }

    /// <summary>
    /// Runs <paramref name="cases"/> cases on one thread (so the allocation counter sees the case's
    /// allocations), each made by <paramref name="mutate"/> and checked by <paramref name="load"/>;
    /// the whole run is bounded in time so a hang fails the test instead of stalling it.
    /// </summary>
    private Tally Run<TCase>(int cases, int salt, string source, Func<Random, (TCase Case, string What)> mutate, Action<TCase> load,
        Func<string, string> stageOf)
    {
        var tally = new Tally();
        var run = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < cases; i++)
            {
                var rng = new Random(Seed + salt * 100_000 + i);
                var (input, what) = mutate(rng);
                var clock = Stopwatch.StartNew();
                long before = GC.GetAllocatedBytesForCurrentThread();
                string? failure = null;
                try
                {
                    load(input);
                    tally.Loaded++;
                }
                catch (ViTScratchException e)
                {
                    tally.Rejected++;
                    string stage = stageOf(e.Message);
                    tally.Stages[stage] = (tally.Stages.GetValueOrDefault(stage).Count + 1, tally.Stages.GetValueOrDefault(stage).Example ?? e.Message);
                    if (e.Message.Contains('\n') || e.Message.Contains('\r')) failure = $"a message of several lines: {e.Message}";
                    else if (!e.Message.Contains(source)) failure = $"a message that does not name '{source}': {e.Message}";
                }
                catch (Exception e)
                {
                    failure = $"{e.GetType().Name}: {e.Message.Split('\n')[0]}";
                }
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (allocated > CaseAllocationBound) failure ??= $"allocated {allocated:N0} bytes";
                if (clock.Elapsed > CaseTimeBound) failure ??= $"took {clock.Elapsed.TotalSeconds:F1} s";
                if (clock.Elapsed > tally.Slowest) tally.Slowest = clock.Elapsed;
                if (failure is not null && tally.Failures.Count < 10) tally.Failures.Add($"case {i} ({what}): {failure}");
            }
        }, TaskCreationOptions.LongRunning);
        Assert.True(run.Wait(RunTimeBound), $"the fuzz run did not finish in {RunTimeBound.TotalSeconds} s: a case hangs");
        output.WriteLine($"{cases} cases: {tally.Loaded} loaded, {tally.Rejected} rejected; slowest case {tally.Slowest.TotalMilliseconds:F0} ms");
        foreach (var (stage, (count, example)) in tally.Stages.OrderBy(x => x.Key))
            output.WriteLine($"  {count,5} rejected at {stage}, e.g. {example}");
        Assert.True(tally.Failures.Count == 0, string.Join("\n", tally.Failures));
        return tally;
    }

    // ---- checkpoints ------------------------------------------------------------------------------

    private const string CheckpointSource = "/fuzz/last.safetensors";

    [Fact]
    public void MutatedCheckpointsLoadCorrectlyOrFailWithOneLine()
    {
        var good = CheckpointFixture.TrainingCheckpointBytes(_device);
        var images = Tensor.FromArray(_device, new float[2 * 3 * 8 * 8], 2, 3, 8, 8);
        var tally = Run(1800, salt: 1, CheckpointSource, rng => MutateCheckpoint(good, rng), bytes => LoadCheckpoint(bytes, images), StageOfCheckpointError);

        // The mutations must reach past the first checks: into the header, the config against the
        // tensors, the weights, the position and the optimizer state; and some must still load.
        Assert.True(tally.Loaded >= 100, $"only {tally.Loaded} cases loaded");
        foreach (var stage in new[] { "length", "json", "layout", "config", "tensors", "values", "position", "optimizer" })
            Assert.True(tally.Stages.ContainsKey(stage), $"no case was rejected at stage '{stage}' (stages hit: {string.Join(", ", tally.Stages.Keys)})");
    }

    /// <summary>Everything `vit eval`, `vit predict` and `vit train --resume` read from a checkpoint, checked when it loads.</summary>
    private void LoadCheckpoint(byte[] bytes, Tensor images)
    {
        var file = SafeTensors.Parse(bytes, CheckpointSource);
        var model = TrainingCheckpoint.LoadModel(file, CheckpointSource, _device);
        Assert.Equal(ViTConfig.FromMetadata(file.Metadata), model.Config);
        foreach (var t in model.StateDict())
        {
            Assert.Equal(file.ByName[t.Name].Shape, t.Shape);
            Assert.Equal(file.ByName[t.Name].Data, t.Data);
            Assert.All(t.Data, v => Assert.True(float.IsFinite(v)));
        }
        TrainingCheckpoint.ReadOptions(file, CheckpointSource);
        var pos = TrainingCheckpoint.ReadPosition(file, CheckpointSource);
        Assert.True(pos.Epoch >= 0 && pos.Batch >= 0 && pos.Step >= pos.Batch && pos.Seen >= pos.Correct && pos.Correct >= 0);
        Assert.True(double.IsFinite(pos.LossSum) && double.IsFinite(pos.Seconds));
        var optimizer = CheckpointFixture.Optimizer(model);
        TrainingCheckpoint.LoadOptimizer(file, optimizer);
        Assert.Equal(pos.Step, optimizer.StepCount);
        using var scope = new TensorScope();
        using var noGrad = Tensor.NoGrad();
        model.Eval();
        Assert.Equal(2 * model.Config.NumClasses, model.Forward(images).ToArray().Length);
    }

    private static string StageOfCheckpointError(string m) =>
        m.Contains("training options") ? "options"
        : m.Contains("header length") || m.Contains("8-byte") ? "length"
        : m.Contains("JSON") ? "json"
        : m.Contains("data offset") || m.Contains("gap") || m.Contains("overlapping") || m.Contains("belong to no tensor") || m.Contains("dtype") || m.Contains("shape") && m.Contains("gives tensor") ? "layout"
        : m.Contains("metadata '") || m.Contains("not divisible") || m.Contains("must be") || m.Contains("at most") || m.Contains("not one of") || m.Contains("no '") ? "config"
        : m.Contains("does not match its weights") || m.Contains("which this model") || m.Contains("every ViT needs") || m.Contains("has shape") ? "tensors"
        : m.Contains("holds") && !m.Contains("optimizer") ? "values"
        : m.Contains("position") || m.Contains("lacks") ? "position"
        : m.Contains("optimizer") ? "optimizer"
        : "other";

    private static readonly string[] ConfigKeys = [.. ViTConfig.MetadataKeys, ViT.SeedKey];
    private static readonly string[] PositionKeys = ["epoch", "batch", "step", "loss_sum", "correct", "seen", "seconds"];
    private static readonly string[] OddNumbers =
        ["0", "-1", "1", "2", "3", "4", "7", "8", "9", "16", "1000", "65536", "1048576", "2147483647", "2147483648", "99999999999",
         "NaN", "Infinity", "-Infinity", "-0", "1e3", "0.5", "0x10", " 8", "8 ", "", "abc", "1\n2"];

    private static (byte[], string) MutateCheckpoint(byte[] good, Random rng)
    {
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(good);
        switch (rng.Next(10))
        {
            case 0:
            case 1:
            {
                var bytes = (byte[])good.Clone();
                int flips = 1 + rng.Next(4);
                int limit = rng.Next(2) == 0 ? headerEnd : bytes.Length;
                for (int k = 0; k < flips; k++) bytes[rng.Next(limit)] ^= (byte)(1 + rng.Next(255));
                return (bytes, $"{flips} byte flips below {limit}");
            }
            case 2:
            {
                int keep = rng.Next(2) == 0 ? rng.Next(headerEnd + 1) : rng.Next(good.Length);
                return (good[..keep], $"cut to {keep} bytes");
            }
            case 3:
            {
                var bytes = (byte[])good.Clone();
                ulong length = rng.Next(3) switch
                {
                    0 => (ulong)rng.NextInt64(),
                    1 => (ulong)(headerEnd - 8 + rng.Next(-16, 17)),
                    _ => (ulong)rng.Next(good.Length * 2),
                };
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
                return (bytes, $"header length {length}");
            }
            case 4:
            {
                // A value in the data: a non-finite or extreme float where a weight or a moment was.
                var bytes = (byte[])good.Clone();
                int at = headerEnd + 4 * rng.Next((bytes.Length - headerEnd) / 4);
                float value = new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -1e30f, -1f, 0f, 1e-45f }[rng.Next(8)];
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(at), value);
                return (bytes, $"float {value} at byte {at}");
            }
            case 5:
            {
                var extra = new byte[1 + rng.Next(64)];
                rng.NextBytes(extra);
                return ([.. good, .. extra], $"{extra.Length} bytes appended");
            }
            default:
                return EditHeader(good, headerEnd, rng);
        }
    }

    /// <summary>One structured edit of the JSON header (a dtype, a shape, the offsets, a metadata value, a name), re-serialised with a correct length.</summary>
    private static (byte[], string) EditHeader(byte[] good, int headerEnd, Random rng)
    {
        var header = JsonNode.Parse(good.AsSpan(8, headerEnd - 8))!.AsObject();
        var data = good[headerEnd..];
        var meta = header[SafeTensors.MetadataKey]!.AsObject();
        var tensorNames = header.Select(p => p.Key).Where(k => k != SafeTensors.MetadataKey).ToList();
        string name = tensorNames[rng.Next(tensorNames.Count)];
        var entry = header[name]!.AsObject();
        string what;
        switch (rng.Next(9))
        {
            case 0:
            {
                JsonNode? dtype = new JsonNode?[] { "F16", "BF16", "F64", "I32", "f32", "", 5, null }[rng.Next(8)];
                entry["dtype"] = dtype;
                what = $"dtype of {name} = {dtype?.ToJsonString() ?? "null"}";
                break;
            }
            case 1:
            {
                var shape = entry["shape"]!.AsArray();
                JsonNode? dim = new JsonNode?[] { -1, 0, 1, 2, 3, 5, 8, 16, 80, int.MaxValue, 2147483648L, 1e20, 2.5, "3", null }[rng.Next(15)];
                if (shape.Count > 0 && rng.Next(3) > 0) shape[rng.Next(shape.Count)] = dim;
                else if (rng.Next(2) == 0) shape.Add(dim);
                else if (shape.Count > 0) shape.RemoveAt(0);
                what = $"shape of {name} = {shape.ToJsonString()}";
                break;
            }
            case 2:
            {
                var offsets = entry["data_offsets"]!.AsArray();
                int i = rng.Next(2);
                long old = offsets[i]!.GetValue<long>();
                JsonNode value = rng.Next(6) switch
                {
                    0 => JsonValue.Create(old + 4 * rng.Next(-3, 4)),
                    1 => JsonValue.Create(old + rng.Next(-3, 4)),
                    2 => JsonValue.Create(-old - 4),
                    3 => JsonValue.Create(long.MaxValue),
                    4 => JsonValue.Create((long)data.Length + 4),
                    _ => JsonValue.Create(1e300),
                };
                offsets[i] = value;
                what = $"data_offsets of {name} = {offsets.ToJsonString()}";
                break;
            }
            case 3:
            case 4:
            {
                string key = rng.Next(2) == 0 ? ConfigKeys[rng.Next(ConfigKeys.Length)] : PositionKeys[rng.Next(PositionKeys.Length)];
                string value = rng.Next(3) switch
                {
                    0 when long.TryParse(meta[key]!.GetValue<string>(), out long n) => (n * new[] { 2, 1000, -1 }[rng.Next(3)] + rng.Next(-1, 2)).ToString(),
                    1 when key == "pool" => new[] { "mean", "cls", "max", "" }[rng.Next(4)],
                    _ => OddNumbers[rng.Next(OddNumbers.Length)],
                };
                meta[key] = value;
                what = $"metadata {key} = '{value}'";
                break;
            }
            case 5:
            {
                string key = meta.Select(p => p.Key).ElementAt(rng.Next(meta.Count));
                if (rng.Next(2) == 0) meta.Remove(key);
                else meta[key] = rng.Next(2) == 0 ? 3 : new JsonArray();
                what = $"metadata {key} removed or not a string";
                break;
            }
            case 6:
            {
                // The options JSON: a field set to a wrong type or an odd value, or text cut short.
                string json = meta["train_options"]!.GetValue<string>();
                meta["train_options"] = rng.Next(2) == 0 ? json[..rng.Next(json.Length)]
                    : json.Replace("\"Epochs\": 3", "\"Epochs\": " + new[] { "-5", "1e99", "\"x\"", "null", "[]" }[rng.Next(5)]);
                what = "train_options edited";
                break;
            }
            case 7:
            {
                header.Remove(name);
                string newName = new[] { "transformer.layers.5.0.norm.weight", "transformer.layers.99999999999.x", name + "\n", "", "optimizer.x", name.ToUpperInvariant() }[rng.Next(6)];
                if (!header.ContainsKey(newName)) header[newName] = entry;
                what = $"tensor {name} renamed '{newName}'";
                break;
            }
            default:
            {
                header[name] = rng.Next(3) switch { 0 => null, 1 => new JsonArray(1, 2), _ => "F32" };
                what = $"entry of {name} replaced";
                break;
            }
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        var bytes = new byte[8 + headerBytes.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)headerBytes.Length);
        headerBytes.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + headerBytes.Length);
        return (bytes, what);
    }

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

        var tally = Run(1600, salt: 2, path, rng =>
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

        var tally = Run(600, salt: 3, path, rng =>
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

    public void Dispose()
    {
        _device.Dispose();
        _dir.Dispose();
    }
}
