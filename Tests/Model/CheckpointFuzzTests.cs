using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Tests.TestSupport;
using ViTScratch.Training.Runs;
using Xunit.Abstractions;

namespace ViTScratch.Tests.Model;

/// <summary>
/// Seeded fuzzing of checkpoint loading: a valid training checkpoint with byte flips, truncations,
/// length prefix edits, odd float values and structured JSON header edits (dtype, shape, offsets,
/// metadata numbers, names), read the way eval, predict and resume read it.
/// </summary>
public class CheckpointFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly Device _device = Device.Create("cpu");

    private const string CheckpointSource = "/fuzz/last.safetensors";

    [Fact]
    public void MutatedCheckpointsLoadCorrectlyOrFailWithOneLine()
    {
        var good = CheckpointFixture.TrainingCheckpointBytes(_device);
        var images = Tensor.FromArray(_device, new float[2 * 3 * 8 * 8], 2, 3, 8, 8);
        var tally = new FuzzRunner(output).Run(1800, salt: 1, CheckpointSource, rng => MutateCheckpoint(good, rng), bytes => LoadCheckpoint(bytes, images), StageOfCheckpointError);

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

    public void Dispose() => _device.Dispose();
}
