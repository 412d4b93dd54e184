using System.Globalization;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Training.Optim;

namespace ViTScratch.Training.Runs;

/// <summary>
/// A training checkpoint is one safetensors file: the model's tensors under their vit-pytorch
/// names (so it loads in PyTorch too), the optimizer state under "optimizer.", and in the metadata
/// the model config, the training options and the position in the run (epoch, batch, step and the
/// partial sums of an interrupted epoch). All randomness in a run is a pure function of
/// (seed, epoch, batch, step), so that position IS the random-number state: resuming from it
/// replays the same batches, augmentations and dropout masks as an uninterrupted run.
/// </summary>
public sealed record TrainingPosition(int Epoch, int Batch, int Step, double LossSum, long Correct, long Seen, double Seconds)
{
    /// <summary>Epoch (0-based) and batch to continue from.</summary>
    public static TrainingPosition Start => new(0, 0, 0, 0, 0, 0, 0);
}

public static class TrainingCheckpoint
{
    public const string OptimizerPrefix = "optimizer.";
    private const string OptionsKey = "train_options";

    /// <summary>Writes a training checkpoint atomically; <paramref name="extraMetadata"/> adds keys (the data record, the metrics so far).</summary>
    public static void Save(string path, ViT model, Optimizer optimizer, TrainOptions options, TrainingPosition pos,
        IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var tensors = model.StateDict();
        foreach (var (name, (shape, values)) in optimizer.SaveState())
            tensors.Add(new SafeTensor(OptimizerPrefix + name, shape, values));
        var meta = model.Config.ToMetadata();
        meta[ViT.SeedKey] = model.Seed.ToString(CultureInfo.InvariantCulture);
        meta[OptionsKey] = options.ToJson();
        meta["epoch"] = I(pos.Epoch);
        meta["batch"] = I(pos.Batch);
        meta["step"] = I(pos.Step);
        meta["loss_sum"] = pos.LossSum.ToString("R", CultureInfo.InvariantCulture);
        meta["correct"] = pos.Correct.ToString(CultureInfo.InvariantCulture);
        meta["seen"] = pos.Seen.ToString(CultureInfo.InvariantCulture);
        meta["seconds"] = pos.Seconds.ToString("R", CultureInfo.InvariantCulture);
        if (extraMetadata is not null)
            foreach (var (k, v) in extraMetadata) meta[k] = v;
        SafeTensors.Write(path, tensors, meta);
    }

    /// <summary>Builds the model stored in a checkpoint (training checkpoint or plain weights file).</summary>
    public static ViT LoadModel(string path, Device device) => LoadModel(Read(path), path, device);

    public static SafeTensorsFile Read(string path)
    {
        if (!File.Exists(path)) throw new ViTScratchException($"checkpoint '{path}' does not exist");
        return SafeTensors.Read(path);
    }

    public static ViT LoadModel(SafeTensorsFile file, string path, Device device)
    {
        ViTConfig config;
        try { config = ViTConfig.FromMetadata(file.Metadata); }
        catch (ViTScratchException e) { throw new ViTScratchException($"checkpoint '{path}': {e.Message}", e); }
        int seed = file.Metadata.TryGetValue(ViT.SeedKey, out var s) && int.TryParse(s, CultureInfo.InvariantCulture, out int v) ? v : 0;
        var model = new ViT(config, device, seed);
        model.LoadStateDict(file.Tensors.Where(t => !t.Name.StartsWith(OptimizerPrefix, StringComparison.Ordinal)).ToList(), path);
        return model;
    }

    public static TrainOptions ReadOptions(SafeTensorsFile file, string path) =>
        file.Metadata.TryGetValue(OptionsKey, out var json)
            ? TrainOptions.FromJson(json, path)
            : throw new ViTScratchException($"checkpoint '{path}' holds weights only, not a training state; it cannot be resumed");

    public static TrainingPosition ReadPosition(SafeTensorsFile file, string path)
    {
        string Get(string key) => file.Metadata.TryGetValue(key, out var v) ? v
            : throw new ViTScratchException($"checkpoint '{path}' lacks '{key}' in its metadata; it cannot be resumed");
        try
        {
            var c = CultureInfo.InvariantCulture;
            return new TrainingPosition(int.Parse(Get("epoch"), c), int.Parse(Get("batch"), c), int.Parse(Get("step"), c),
                double.Parse(Get("loss_sum"), c), long.Parse(Get("correct"), c), long.Parse(Get("seen"), c), double.Parse(Get("seconds"), c));
        }
        catch (FormatException)
        {
            throw new ViTScratchException($"checkpoint '{path}': its run position metadata is not numeric");
        }
    }

    public static void LoadOptimizer(SafeTensorsFile file, Optimizer optimizer)
    {
        var state = new Dictionary<string, (int[], float[])>();
        foreach (var t in file.Tensors)
            if (t.Name.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
                state[t.Name[OptimizerPrefix.Length..]] = (t.Shape, t.Data);
        optimizer.LoadState(state);
    }

    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
}
