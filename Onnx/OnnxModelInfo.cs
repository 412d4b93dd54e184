using System.Globalization;
using System.Text.Json;

namespace ViTScratch.Onnx;

/// <summary>
/// What a user of an exported model needs besides the graph: the class names in logit order and
/// how pixels become the "images" input, x = (pixel / 255 − Mean[c]) / Std[c] for channel c.
/// Stored in the ONNX file's metadata_props (<see cref="ToMetadata"/>), where ONNX Runtime shows
/// them as <c>InferenceSession.ModelMetadata.CustomMetadataMap</c>; <see cref="FromMetadata"/>
/// reads them back from that map.
/// </summary>
/// <param name="ClassNames">One name per logit, in order.</param>
/// <param name="Mean">Per-channel mean of pixel / 255 on the training data.</param>
/// <param name="Std">Per-channel standard deviation of pixel / 255 on the training data.</param>
/// <param name="Dataset">The dataset the model was trained on, when known.</param>
public sealed record OnnxModelInfo(IReadOnlyList<string> ClassNames, IReadOnlyList<float> Mean, IReadOnlyList<float> Std, string? Dataset = null)
{
    /// <summary>
    /// "none", or "flip": the graph judges each image by the mean of its logits and its mirror
    /// image's (left-right), as `vit eval` and `vit predict` do for a run trained with
    /// <c>--tta flip</c>; the input and output stay [batch, ...], the graph runs the model on
    /// 2·batch images inside.
    /// </summary>
    public string TestTimeAugmentation { get; init; } = "none";

    /// <summary>metadata_props key of the class names (JSON array).</summary>
    public const string ClassNamesKey = "class_names";
    /// <summary>metadata_props key of the per-channel mean.</summary>
    public const string MeanKey = "normalization_mean";
    /// <summary>metadata_props key of the per-channel standard deviation.</summary>
    public const string StdKey = "normalization_std";
    /// <summary>metadata_props key of the normalisation formula.</summary>
    public const string NormalizationKey = "normalization";
    /// <summary>metadata_props key of the dataset name.</summary>
    public const string DatasetKey = "dataset";
    /// <summary>The values <see cref="TestTimeAugmentation"/> may take.</summary>
    public static IReadOnlyList<string> TestTimeAugmentations { get; } = ["none", "flip"];

    /// <summary>metadata_props key of the test-time augmentation inside the graph ("none" or "flip").</summary>
    public const string TestTimeAugmentationKey = "test_time_augmentation";

    /// <summary>The formula <see cref="NormalizationKey"/> holds, for people reading the metadata.</summary>
    public const string NormalizationFormula = "images[n, c, y, x] = (pixel / 255 - normalization_mean[c]) / normalization_std[c], pixel in 0..255";

    /// <summary>The metadata_props entries: lists as JSON arrays (class names may hold commas), numbers round-trip exactly.</summary>
    public Dictionary<string, string> ToMetadata()
    {
        var meta = new Dictionary<string, string>
        {
            [ClassNamesKey] = JsonSerializer.Serialize(ClassNames),
            [MeanKey] = FloatList(Mean),
            [StdKey] = FloatList(Std),
            [NormalizationKey] = NormalizationFormula,
            [TestTimeAugmentationKey] = TestTimeAugmentation,
        };
        if (Dataset is not null) meta[DatasetKey] = Dataset;
        return meta;
    }

    /// <summary>Reads what <see cref="ToMetadata"/> wrote; other keys are ignored.</summary>
    public static OnnxModelInfo FromMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        T Parse<T>(string key)
        {
            if (!metadata.TryGetValue(key, out var json))
                throw new ViTScratchException($"ONNX metadata has no '{key}' entry; was the file written by `vit export`?");
            try
            {
                return JsonSerializer.Deserialize<T>(json) ?? throw new JsonException("null");
            }
            catch (JsonException e)
            {
                throw new ViTScratchException($"ONNX metadata '{key}' is not a JSON list ({e.Message})", e);
            }
        }
        string tta = metadata.TryGetValue(TestTimeAugmentationKey, out var t) ? t : "none"; // files written before the key: none
        if (!TestTimeAugmentations.Contains(tta))
            throw new ViTScratchException($"ONNX metadata '{TestTimeAugmentationKey}' is '{ViTScratchException.Printable(tta)}', not none or flip; was the file written by `vit export`?");
        return new OnnxModelInfo(Parse<string[]>(ClassNamesKey), Parse<float[]>(MeanKey), Parse<float[]>(StdKey),
            metadata.TryGetValue(DatasetKey, out var d) ? d : null) { TestTimeAugmentation = tta };
    }

    // "R" writes the shortest text that parses back to the same float.
    private static string FloatList(IReadOnlyList<float> values) =>
        "[" + string.Join(", ", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]";
}
