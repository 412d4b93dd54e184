using System.Globalization;

namespace ViTScratch.Training.Cli;

/// <summary>
/// A small, strict command-line parser: `--name value`, `--name=value` and boolean `--flag`.
/// Every option must be declared by the command that reads it; anything unknown, missing or
/// malformed becomes a one-line <see cref="ViTScratchException"/> that names the flag.
/// </summary>
public sealed class ArgParser
{
    private readonly string _command;
    private readonly Dictionary<string, string?> _values = new();
    private readonly List<string> _positional = new();
    private readonly HashSet<string> _read = new();

    public ArgParser(string command, IEnumerable<string> args)
    {
        _command = command;
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a == "--")
            {
                _positional.Add(a);
                continue;
            }
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal)) value = list[++i];
            if (_values.ContainsKey(name)) throw Error($"--{name} is given twice");
            _values[name] = value;
        }
    }

    public IReadOnlyList<string> Positional => _positional;

    public bool Has(string name) { _read.Add(name); return _values.ContainsKey(name); }

    public string String(string name, string fallback) => Optional(name) ?? fallback;

    public string? Optional(string name)
    {
        _read.Add(name);
        if (!_values.TryGetValue(name, out var v)) return null;
        return v ?? throw Error($"--{name} needs a value");
    }

    public string Required(string name, string hint) =>
        Optional(name) ?? throw Error($"--{name} is required ({hint})");

    public bool Flag(string name)
    {
        _read.Add(name);
        if (!_values.TryGetValue(name, out var v)) return false;
        return v switch
        {
            null or "true" or "1" or "yes" => true,
            "false" or "0" or "no" => false,
            _ => throw Error($"--{name} is a switch; got value '{v}'"),
        };
    }

    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = Optional(name);
        if (s is null) return fallback;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw Error($"--{name} expects a whole number, got '{s}'");
        if (v < min || v > max) throw Error($"--{name} must be between {min} and {max}, got {v}");
        return v;
    }

    public float Float(string name, float fallback, float min = float.MinValue, float max = float.MaxValue)
    {
        var s = Optional(name);
        if (s is null) return fallback;
        if (!float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) || !float.IsFinite(v))
            throw Error($"--{name} expects a number, got '{s}'");
        if (v < min || v > max) throw Error($"--{name} must be between {min} and {max}, got {s}");
        return v;
    }

    public string Choice(string name, string fallback, params string[] choices)
    {
        var s = String(name, fallback);
        if (!choices.Contains(s)) throw Error($"--{name} must be one of {string.Join(", ", choices)}; got '{s}'");
        return s;
    }

    /// <summary>Fails on any flag the command never asked about (typos such as --epoch).</summary>
    public void RejectUnknown(int maxPositional = 0)
    {
        foreach (var name in _values.Keys)
            if (!_read.Contains(name))
                throw Error($"unknown option --{name} (see 'vit {_command} --help')");
        if (_positional.Count > maxPositional)
            throw Error($"unexpected argument '{_positional[maxPositional]}' (see 'vit {_command} --help')");
    }

    private ViTScratchException Error(string message) => new($"vit {_command}: {message}");
}
