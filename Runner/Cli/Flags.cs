using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace ViTScratch.Training.Cli;

/// <summary>
/// The kinds of flag `vit` has, as System.CommandLine options whose parse errors are the runner's
/// one-line messages naming the flag ("--epochs expects a whole number, got 'ten'"). Ranges and
/// choices are passed in from where they are defined (<see cref="TrainOptions.Limits"/>,
/// <see cref="TrainOptions.Choices"/>), never restated here.
/// </summary>
internal static class Flags
{
    public static Option<int> Int(string name, string description, OptionLimit? limit = null, string helpName = "N", int? fallback = null) =>
        WithDefault(new Option<int>(name)
        {
            HelpName = helpName, Description = description,
            CustomParser = r => Number(r, name, limit, s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null, "a whole number", 0),
        }, fallback);

    public static Option<long> Long(string name, string description, OptionLimit? limit = null, string helpName = "N", long? fallback = null) =>
        WithDefault(new Option<long>(name)
        {
            HelpName = helpName, Description = description,
            CustomParser = r => Number(r, name, limit, s => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v : null, "a whole number", 0L),
        }, fallback);

    public static Option<float> Float(string name, string description, OptionLimit? limit = null, string helpName = "X") => new(name)
    {
        HelpName = helpName, Description = description,
        CustomParser = r => Number(r, name, limit,
            s => float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v) ? v : null, "a number", 0f),
    };

    public static Option<string> Text(string name, string description, string helpName) => new(name) { HelpName = helpName, Description = description };

    /// <summary>A flag that takes one of <paramref name="choices"/>, which tab completion offers.</summary>
    public static Option<string> Choice(string name, string description, IReadOnlyList<string> choices, string? helpName = null, string? fallback = null)
    {
        var option = new Option<string>(name)
        {
            HelpName = helpName ?? string.Join('|', choices), Description = description,
            CustomParser = r =>
            {
                string s = r.Tokens[0].Value;
                if (!choices.Contains(s)) r.AddError($"{name} must be one of {string.Join(", ", choices)}; got '{s}'");
                return s;
            },
        };
        option.CompletionSources.Add(choices.ToArray());
        if (fallback is not null) option.DefaultValueFactory = _ => fallback;
        return option;
    }

    // A default that --help shows as [default: X]; Given() still tells it from a typed value.
    private static Option<T> WithDefault<T>(Option<T> option, T? fallback) where T : struct
    {
        if (fallback is T v) option.DefaultValueFactory = _ => v;
        return option;
    }

    /// <summary>`--precision fp32|tf32|bf16`, the same for every command that computes (training has no fixed default: a resumed run keeps its own).</summary>
    public static Option<string> Precision(bool forTraining = false) => forTraining
        ? Choice("--precision", PrecisionHelp + " (default fp32; a resumed run keeps its own unless given)", TrainOptions.Choices[nameof(TrainOptions.Precision)])
        : Choice("--precision", PrecisionHelp, TrainOptions.Choices[nameof(TrainOptions.Precision)], fallback: "fp32");

    /// <summary>`--device NAME`, the same for every command that computes (training passes no default: a resumed run keeps its own).</summary>
    public static Option<string> Device(bool forTraining = false) => forTraining
        ? Choice("--device", DeviceHelp + " (default auto; a resumed run keeps its own unless given)", TrainOptions.Choices[nameof(TrainOptions.Device)], "NAME")
        : Choice("--device", DeviceHelp, TrainOptions.Choices[nameof(TrainOptions.Device)], "NAME", "auto");

    /// <summary>`--tta` of `vit eval` and `vit predict`: by default the test-time augmentation the checkpoint's run was judged with.</summary>
    public static Option<string> Tta() => Choice("--tta", "test-time augmentation: none, or flip (average the logits of the image and its " +
        "mirror image); default: what the checkpoint's run was validated with (its --tta)", TrainOptions.Choices[nameof(TrainOptions.Tta)], "MODE");

    /// <summary>`--cuda-graph`, the same for `vit train` and `vit bench`.</summary>
    public static Option<bool> CudaGraph() => Switch("--cuda-graph",
        "capture one training step into a CUDA graph and replay it with one launch per step (cuda; not yet measured on a GPU). " +
        "On ilgpu-cpu the step runs in the same prepared form without a capture (a test mode); on cpu it is an error. " +
        "Not with dropout, patch dropout, mixup or cutmix");

    private const string DeviceHelp = "auto (cuda when present, else cpu), cpu, cuda, ilgpu-cpu";

    private const string PrecisionHelp =
        "the arithmetic of the matrix products: fp32, tf32 or bf16. cpu always computes in fp32 (the flag is " +
        "accepted); on cuda tf32/bf16 run the matmuls and attention products on tensor cores, with weights, optimizer " +
        "state, norms and the loss in fp32";

    /// <summary>A switch: `--flag` alone is on; `--flag true|false` (or yes/no, 1/0) says so explicitly.</summary>
    public static Option<bool> Switch(string name, string description) => new(name)
    {
        Description = description, Arity = ArgumentArity.ZeroOrOne,
        CustomParser = r => r.Tokens.Count == 0 || r.Tokens[0].Value switch
        {
            "true" or "1" or "yes" => true,
            "false" or "0" or "no" => false,
            var v => Fail(r, $"{name} is a switch; got value '{v}'"),
        },
    };

    /// <summary>Whether the command line gave <paramref name="option"/> at all (a default is not "given").</summary>
    public static bool Given(this ParseResult r, Option option) => r.GetResult(option) is { Implicit: false };

    /// <summary>The value of a flag that must be given, or the one-line error that says what it is for.</summary>
    public static T Required<T>(this ParseResult r, Option<T> option, string command, string hint) =>
        r.Given(option) ? r.GetValue(option)! : throw new ViTScratchException($"vit {command}: {option.Name} is required ({hint})");

    private static T Number<T>(ArgumentResult r, string name, OptionLimit? limit, Func<string, T?> parse, string kind, T fallback) where T : struct, IConvertible
    {
        string s = r.Tokens[0].Value;
        if (parse(s) is not T v)
        {
            r.AddError($"{name} expects {kind}, got '{s}'");
            return fallback;
        }
        if (limit?.Problem(v.ToDouble(CultureInfo.InvariantCulture)) is string problem) r.AddError($"{name} {problem}");
        return v;
    }

    private static bool Fail(ArgumentResult r, string message)
    {
        r.AddError(message);
        return false;
    }
}
