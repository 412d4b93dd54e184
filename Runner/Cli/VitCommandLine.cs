using System.CommandLine;
using System.CommandLine.Parsing;
using ViTScratch.Training.Commands;

namespace ViTScratch.Training.Cli;

/// <summary>
/// `vit`'s command tree on System.CommandLine: generated --help for every command, tab completion
/// (the [suggest] directive that dotnet-suggest calls), response files (`vit train @flags.rsp`),
/// and parse errors turned into the runner's one line, with a "did you mean" for a mistyped flag or command.
/// </summary>
internal static class VitCommandLine
{
    /// <summary>Any command: print the stack trace of an internal error after its one line.</summary>
    public const string VerboseFlag = "--verbose";

    public static RootCommand Build()
    {
        var root = new RootCommand("vit — Vision Transformers from scratch in C#. `vit` alone trains the default " +
                                   "(vit-micro on Fashion-MNIST, CPU); 'vit <command> --help' shows the options of a command.")
        {
            TrainCommand.Create(), EvalCommand.Create(), PredictCommand.Create(), ExportCommand.Create(),
            BenchCommand.Create(), InfoCommand.Create(), KernelsCommand.Create(),
        };
        root.Options.Add(new Option<bool>(VerboseFlag) { Description = "after an internal error's one line, print its stack trace", Recursive = true });
        return root;
    }

    /// <summary>Throws the one-line error for the first thing wrong with the command line, if any.</summary>
    public static void ThrowOnErrors(ParseResult result)
    {
        if (result.Errors.Count > 0) throw new ViTScratchException(Describe(result));
    }

    private static string Describe(ParseResult result)
    {
        var command = result.CommandResult.Command;
        string path = CommandPath(result.CommandResult);
        string see = $" (see '{path} --help')";
        if (result.UnmatchedTokens.Count > 0)
        {
            string token = result.UnmatchedTokens[0];
            if (token.StartsWith('-'))
            {
                string flag = token.Split('=')[0];
                var names = OptionsOf(result.CommandResult).SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--", StringComparison.Ordinal));
                return $"{path}: unknown option {flag}{DidYouMean(flag, names)}{see}";
            }
            if (command.Subcommands.Count > 0)
            {
                var names = command.Subcommands.Select(c => c.Name).ToList();
                return $"{path}: unknown command '{token}'{DidYouMean(token, names)} (commands: {string.Join(", ", names)})";
            }
            return $"{path}: unexpected argument '{token}'{see}";
        }
        if (command.Action is null && command.Subcommands.Count > 0 && result.CommandResult.Children.All(c => c is not CommandResult))
            return $"{path}: expected a command: {string.Join(", ", command.Subcommands.Select(c => c.Name))}{see}";
        var error = result.Errors[0];
        string message = error.SymbolResult switch
        {
            // Messages System.CommandLine writes itself, in the runner's words (ours name the flag already).
            OptionResult o when o.Tokens.Count == 0 && !o.Implicit => $"{o.Option.Name} needs a value",
            OptionResult o when o.Tokens.Count > 1 => $"{o.Option.Name} is given more than once",
            _ => error.Message,
        };
        return $"{path}: {message.ReplaceLineEndings(" ")}";
    }

    private static string CommandPath(CommandResult c)
    {
        var names = new List<string>();
        for (SymbolResult? s = c; s is CommandResult r; s = r.Parent)
            names.Insert(0, r.Parent is null ? "vit" : r.Command.Name);
        return string.Join(' ', names);
    }

    // The command's own options and the recursive ones of the commands above it (--verbose, --help).
    private static IEnumerable<Option> OptionsOf(CommandResult c)
    {
        foreach (var o in c.Command.Options) yield return o;
        for (var p = c.Parent as CommandResult; p is not null; p = p.Parent as CommandResult)
            foreach (var o in p.Command.Options.Where(o => o.Recursive))
                yield return o;
    }

    /// <summary>"; did you mean --epochs?" for the closest name within a few edits (or of which the token is a prefix), else "".</summary>
    internal static string DidYouMean(string token, IEnumerable<string> names)
    {
        var best = names.Distinct()
            .Select(n => (Name: n, Distance: n.StartsWith(token, StringComparison.Ordinal) && token.Length > 2 ? 0 : Edits(token, n)))
            .Where(x => x.Distance <= Math.Max(2, token.Length / 3))
            .OrderBy(x => x.Distance).ThenBy(x => x.Name.Length)
            .Select(x => x.Name).FirstOrDefault();
        return best is null ? "" : $"; did you mean {best}?";
    }

    // Levenshtein distance: insertions, deletions and substitutions.
    private static int Edits(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }
}
