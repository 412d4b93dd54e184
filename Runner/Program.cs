using System.CommandLine;
using System.CommandLine.Help;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Commands;

namespace ViTScratch.Training;

/// <summary>
/// `vit`: the console runner. User errors (bad flags, missing or wrong data, unreadable or hostile
/// files, unwritable paths, a full disk, out of memory on a user-sized input) print one line that
/// names the file or flag and the fix, and exit with code 1. Anything else is a bug: one line
/// saying so (exit 70), and the stack trace only with --verbose. Ctrl+C or SIGTERM during training
/// saves last.safetensors and exits 130 or 143.
/// </summary>
public static class Program
{
    /// <summary>Exit codes: 0 done, 1 a user error (one line on stderr), 70 an internal error (a bug).</summary>
    public const int ExitUserError = 1, ExitInternalError = 70;

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        // Read before parsing, so an internal error in the parse itself still gets its trace.
        bool verbose = args.Contains(VitCommandLine.VerboseFlag);
        if (args.All(a => a == VitCommandLine.VerboseFlag))
            args = ["train", .. args]; // `vit` alone trains the default, as the README promises
        else if (args is ["help", .. var rest])
            args = [.. rest, "--help"];
        try
        {
            var root = VitCommandLine.Build();
            var result = root.Parse(args);
            verbose |= result.Errors.Count == 0 && result.GetValue<bool>(VitCommandLine.VerboseFlag); // also from a response file
            // --help (and the [suggest] directive of tab completion) answer even beside a mistake.
            if (result.Action is not HelpAction && !root.Directives.Any(d => result.GetResult(d) is not null))
                VitCommandLine.ThrowOnErrors(result);
            return result.Invoke(new InvocationConfiguration
            {
                Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null, // `vit train` handles SIGINT/SIGTERM itself
            });
        }
        catch (Exception e)
        {
            return Report(e, verbose, stderr);
        }
    }

    /// <summary>
    /// How `vit` ends on an exception: one line for a user error (exit 1) or a bug (exit 70), the
    /// stack trace after it only with --verbose. A cancellation that escaped the trainer (Ctrl+C
    /// before training started) is exit 130.
    /// </summary>
    internal static int Report(Exception e, bool verbose, TextWriter stderr)
    {
        int code;
        if (e is OperationCanceledException)
        {
            stderr.WriteLine("cancelled");
            return TrainCommand.ExitInterrupted;
        }
        if (e is ViTScratchException)
        {
            stderr.WriteLine($"error: {OneLine(e.Message)}");
            code = ExitUserError;
        }
        else if (UserErrorLine(e) is string line)
        {
            stderr.WriteLine($"error: {OneLine(line)}");
            code = ExitUserError;
        }
        else
        {
            stderr.WriteLine($"internal error: {e.GetType().Name}: {OneLine(e.Message)} (this is a bug in vit; run again with --verbose for the stack trace and report it)");
            code = ExitInternalError;
        }
        if (verbose) stderr.WriteLine(e);
        return code;
    }

    /// <summary>
    /// The one-line message for an exception that comes from the user's files, paths, disk or
    /// input sizes rather than from a bug; null for a bug. .NET's own messages name the path
    /// ("Access to the path '/x' is denied."); the line adds what to do.
    /// </summary>
    internal static string? UserErrorLine(Exception e) => e switch
    {
        UnauthorizedAccessException or IOException => Runs.AtomicFile.Reason(e) is var why && why != e.Message ? $"{e.Message.TrimEnd('.')}: {why}" : e.Message,
        OutOfMemoryException => "out of memory: the input or the model is too large for this machine's memory; use a smaller --batch, " +
                                "a smaller model or a smaller input",
        InsufficientExecutionStackException => "the input is nested too deeply to read; the file is corrupt or hostile",
        OverflowException => $"a size in the input is too large ({e.Message.TrimEnd('.')}); the file is corrupt or hostile",
        _ => null,
    };

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
