using System.Text.Json;

namespace ViTScratch.Training.Runs;

/// <summary>
/// result.json: the run's one test measurement, taken after the last epoch on the checkpoint
/// chosen on validation (<see cref="SelectedOn"/> = "val"), or on the last epoch's model when the
/// run had no validation split ("last epoch"). <see cref="ValAccuracy"/> is NaN in that case.
/// </summary>
public sealed record TestResult(string Checkpoint, int Epoch, string SelectedOn, double ValAccuracy, double TestLoss, double TestAccuracy, int Images)
{
    /// <summary>The test-time augmentation the figures were measured with (<see cref="TrainOptions.Tta"/>; "none" in files written before it existed).</summary>
    public string Tta { get; init; } = "none";

    /// <summary>The file in the run directory that holds it.</summary>
    public const string FileName = "result.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>As result.json writes it.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads result.json; <paramref name="source"/> names it in errors.</summary>
    public static TestResult FromJson(string json, string source)
    {
        try { return JsonSerializer.Deserialize<TestResult>(json, Json) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new ViTScratchException($"{source}: not a result.json ({ViTScratchException.Printable(e.Message, 160)})", e); }
    }
}
