using System.Text.Json;

namespace ViTScratch.Training.Runs;

/// <summary>
/// result.json: the run's one test measurement, taken after the last epoch on the checkpoint
/// chosen on validation (<see cref="SelectedOn"/> = "val"), or on the last epoch's model when the
/// run had no validation split ("last epoch"). <see cref="ValAccuracy"/> is NaN in that case.
/// </summary>
public sealed record TestResult(string Checkpoint, int Epoch, string SelectedOn, double ValAccuracy, double TestLoss, double TestAccuracy, int Images)
{
    public const string FileName = "result.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TestResult FromJson(string json, string source)
    {
        try { return JsonSerializer.Deserialize<TestResult>(json, Json) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new ViTScratchException($"{source}: not a result.json ({ViTScratchException.Printable(e.Message, 160)})", e); }
    }
}
