using System.Text.Json;
using ViTScratch.Training.Data;

namespace ViTScratch.Training.Runs;

/// <summary>
/// What a run was trained on: the dataset, the absolute directory its files were read from, the
/// size of each split on disk and a content fingerprint of each (<see cref="ImageDataset.Fingerprint"/>).
/// Stored in every checkpoint (metadata "data") and in config.json, so that `--resume` and `vit eval`
/// find the same files from any working directory and refuse different ones: a resumed run
/// replays batches by position in the training set, so other data would silently train on other
/// images with another schedule.
/// </summary>
internal sealed record DataProvenance(string Dataset, string Path, int TrainImages, int TestImages, string TrainFingerprint, string TestFingerprint)
{
    public const string MetadataKey = "data";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>The provenance of two splits as loaded from disk (before any --train-limit / --test-limit).</summary>
    public static DataProvenance Of(ImageDataset train, ImageDataset? test) =>
        new(train.Name, train.Source ?? "", train.Count, test?.Count ?? 0, train.Fingerprint(), test?.Fingerprint() ?? "");

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The provenance a checkpoint records, or null for one written before checkpoints recorded it.</summary>
    public static DataProvenance? FromMetadata(IReadOnlyDictionary<string, string> metadata, string checkpoint)
    {
        if (!metadata.TryGetValue(MetadataKey, out var json)) return null;
        DataProvenance? p;
        try { p = JsonSerializer.Deserialize<DataProvenance>(json, Json); }
        catch (JsonException e) { throw new ViTScratchException($"checkpoint '{checkpoint}': its data record is not valid JSON ({ViTScratchException.Printable(e.Message, 160)})", e); }
        if (p is null || string.IsNullOrEmpty(p.Dataset) || p.Path is null || p.TrainImages < 0 || p.TestImages < 0
            || string.IsNullOrEmpty(p.TrainFingerprint) || p.TestFingerprint is null || (p.TestImages > 0 && p.TestFingerprint.Length == 0))
            throw new ViTScratchException($"checkpoint '{checkpoint}': its data record is incomplete");
        return p;
    }

    /// <summary>
    /// Compares a split loaded now with the one recorded. Equal: nothing happens. Different: an
    /// error, unless the user re-targeted on purpose with an explicit --data (<paramref name="retargeted"/>),
    /// then one warning line on <paramref name="log"/>.
    /// </summary>
    public void Check(ImageDataset? split, bool train, bool retargeted, string checkpoint, TextWriter log)
    {
        if (split is null)
        {
            if ((train ? TrainImages : TestImages) == 0) return;
            throw new ViTScratchException($"the data '{checkpoint}' was trained on had a test split in '{Path}' and this data has none");
        }
        string name = train ? "training" : "test";
        int count = train ? TrainImages : TestImages;
        string fingerprint = train ? TrainFingerprint : TestFingerprint;
        if (split.Name == Dataset && split.Count == count && split.Fingerprint() == fingerprint) return;
        string what = $"the {name} split in '{split.Source}' ({split.Name}, {split.Count} images, fingerprint {split.Fingerprint()}) is not the data " +
                      $"'{checkpoint}' was trained on ({Dataset}, {count} images in '{Path}', fingerprint {fingerprint})";
        if (!retargeted)
            throw new ViTScratchException($"{what}; point --data at the run's data, or pass --data explicitly to use this data anyway");
        log.WriteLine($"warning: {what}; using it, as --data asks");
    }
}
