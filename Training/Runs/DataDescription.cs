using System.Text.Json;
using ViTScratch.Training.Data;

namespace ViTScratch.Training.Runs;

/// <summary>
/// What a model needs to know about its input to be used on its own: the class names (label i is
/// ClassNames[i]) and the per-channel normalisation it was trained with. Stored in every
/// checkpoint (metadata "data_description"), so `vit predict` and `vit eval` print names and
/// normalise right for any dataset, an image folder's included, without the dataset at hand.
/// </summary>
internal sealed record DataDescription(string Dataset, int Channels, int ImageSize, string[] ClassNames, float[] Mean, float[] Std)
{
    public const string MetadataKey = "data_description";

    public static DataDescription Of(ImageDataset d) => new(d.Name, d.Channels, d.Height, d.ClassNames.ToArray(), d.Mean.ToArray(), d.Std.ToArray());

    public static DataDescription Of(DatasetInfo d) => new(d.Name, d.Channels, d.Height, d.ClassNames.ToArray(), d.Mean.ToArray(), d.Std.ToArray());

    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>The description a checkpoint stores, or null for one written before checkpoints stored it.</summary>
    public static DataDescription? FromMetadata(IReadOnlyDictionary<string, string> metadata, string checkpoint)
    {
        if (!metadata.TryGetValue(MetadataKey, out var json)) return null;
        DataDescription? d;
        try { d = JsonSerializer.Deserialize<DataDescription>(json); }
        catch (JsonException e) { throw new ViTScratchException($"checkpoint '{checkpoint}': its data description is not valid JSON ({ViTScratchException.Printable(e.Message, 160)})", e); }
        if (d is null || d.ClassNames is null || d.Mean is null || d.Std is null || d.ClassNames.Length is 0 or > 256
            || d.Channels is not (1 or 3) || d.Mean.Length != d.Channels || d.Std.Length != d.Channels
            || !d.Mean.All(float.IsFinite) || !d.Std.All(s => float.IsFinite(s) && s > 0) || d.ImageSize is < 1 or > 8192)
            throw new ViTScratchException($"checkpoint '{checkpoint}': its data description is incomplete or out of range");
        return d;
    }
}
