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

/// <summary>A training run's checkpoint: the model's safetensors plus the optimizer state, the options and the position in the run, so a run resumes exactly.</summary>
public static class TrainingCheckpoint
{
    /// <summary>Prefix of the optimizer's tensors in the file.</summary>
    public const string OptimizerPrefix = "optimizer.";
    private const string OptionsKey = "train_options";

    /// <summary>
    /// Where the trained weights go when the file's model tensors are their average (--ema): under
    /// the optimizer's prefix, so every reader of models (vit eval, predict, export, PyTorch's
    /// safetensors) takes the average and only a resume reads them back.
    /// </summary>
    public const string WeightsPrefix = OptimizerPrefix + "weights.";

    /// <summary>
    /// Writes a training checkpoint atomically; <paramref name="extraMetadata"/> adds keys (the data
    /// record, the metrics so far). With <paramref name="average"/> (a run with --ema, once its
    /// average has started), the model tensors are the average's and <paramref name="model"/>'s own
    /// weights go under <see cref="WeightsPrefix"/>.
    /// </summary>
    public static void Save(string path, ViT model, Optimizer optimizer, TrainOptions options, TrainingPosition pos,
        IReadOnlyDictionary<string, string>? extraMetadata = null, WeightAverage? average = null)
    {
        var tensors = average is null ? model.StateDict() : average.Model.StateDict();
        if (average is not null)
            foreach (var t in model.StateDict()) tensors.Add(t with { Name = WeightsPrefix + t.Name });
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

    /// <summary>Reads a checkpoint file; errors name it.</summary>
    public static SafeTensorsFile Read(string path)
    {
        if (!File.Exists(path)) throw new ViTScratchException($"checkpoint '{path}' does not exist");
        return SafeTensors.Read(path);
    }

    /// <summary>The model of a checkpoint, its config checked against its tensors before it is built (see ViT.Load).</summary>
    public static ViT LoadModel(SafeTensorsFile file, string path, Device device) => ViT.Load(file, path, device, ignorePrefix: OptimizerPrefix);

    /// <summary>
    /// The training options stored in a checkpoint, validated. <paramref name="forResume"/> refuses
    /// options this build does not know (a checkpoint of a newer vit); reading its dataset or
    /// test-time augmentation for an evaluation does not.
    /// </summary>
    public static TrainOptions ReadOptions(SafeTensorsFile file, string path, bool forResume = false) =>
        file.Metadata.TryGetValue(OptionsKey, out var json)
            ? TrainOptions.FromJson(json, path, refuseUnknown: forResume)
            : throw new ViTScratchException($"checkpoint '{path}' holds weights only, not a training state; it cannot be resumed");

    /// <summary>
    /// The position in the run, range-checked: counts are whole and not negative, sums finite,
    /// seen ≥ correct, the step no smaller than the batch within the epoch, and equal to the
    /// optimizer's step count stored beside it (every step is one optimizer update).
    /// </summary>
    public static TrainingPosition ReadPosition(SafeTensorsFile file, string path)
    {
        ViTScratchException Bad(string why) => new($"checkpoint '{path}': {why}; the file is corrupt or was edited, so it cannot be resumed");
        string Get(string key) => file.Metadata.TryGetValue(key, out var v) ? v
            : throw new ViTScratchException($"checkpoint '{path}' lacks '{key}' in its metadata; it cannot be resumed");
        var c = CultureInfo.InvariantCulture;
        long Count(string key, long max)
        {
            string text = Get(key);
            return long.TryParse(text, NumberStyles.Integer, c, out long v) && v >= 0 && v <= max ? v
                : throw Bad($"run position '{key}' = '{ViTScratchException.Printable(text)}' is not a whole number in [0, {max}]");
        }
        double Sum(string key)
        {
            string text = Get(key);
            return double.TryParse(text, NumberStyles.Float, c, out double v) && double.IsFinite(v) && v >= 0 ? v
                : throw Bad($"run position '{key}' = '{ViTScratchException.Printable(text)}' is not a finite number >= 0");
        }
        var pos = new TrainingPosition((int)Count("epoch", int.MaxValue - 1), (int)Count("batch", int.MaxValue), (int)Count("step", int.MaxValue),
            Sum("loss_sum"), Count("correct", long.MaxValue), Count("seen", long.MaxValue), Sum("seconds"));
        if (pos.Correct > pos.Seen) throw Bad($"run position says {pos.Correct} of {pos.Seen} images were classified correctly");
        if (pos.Step < pos.Batch) throw Bad($"run position is at batch {pos.Batch} of its epoch but only {pos.Step} steps were taken in all");
        if (file.ByName.TryGetValue(OptimizerPrefix + Optimizer.StepKey, out var steps) && steps.Data.Length == 1 && steps.Data[0] != (float)pos.Step)
            throw Bad($"run position is at step {pos.Step} but the optimizer state has taken {steps.Data[0].ToString(CultureInfo.InvariantCulture)} steps");
        return pos;
    }

    /// <summary>Restores the optimizer state stored under "optimizer." (all checked before any is copied).</summary>
    public static void LoadOptimizer(SafeTensorsFile file, Optimizer optimizer)
    {
        var state = new Dictionary<string, (int[], float[])>();
        foreach (var t in file.Tensors)
            if (t.Name.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
                state[t.Name[OptimizerPrefix.Length..]] = (t.Shape, t.Data);
        optimizer.LoadState(state, $"checkpoint '{file.Source}'");
    }

    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
}
