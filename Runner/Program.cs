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
    public const string Usage = """
        vit — Vision Transformers from scratch in C#

        usage: vit <command> [options]
          train      train a ViT (default: vit-micro on Fashion-MNIST, CPU-friendly)
          eval       evaluate a checkpoint on a test set
          predict    top-5 classes for an image file or a test-set index, optional attention map
          export     write a checkpoint's model as ONNX (for ONNX Runtime), class names in its metadata
          bench      training and inference images/s of a preset on a device
          info       devices, presets and parameter counts
          kernels    kernels ptx: write the PTX of every GPU kernel (no GPU needed)

        'vit <command> --help' shows the options of a command; --verbose (any command) shows the
        stack trace of an internal error.
        """;

    /// <summary>Exit codes: 0 done, 1 a user error (one line on stderr), 70 an internal error (a bug).</summary>
    public const int ExitUserError = 1, ExitInternalError = 70;

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        bool verbose = args.Contains("--verbose");
        args = args.Where(a => a != "--verbose").ToArray();
        if (args.Length == 0)
            args = ["train"]; // `vit` alone trains the default, as the README promises
        string command = args[0];
        var rest = args.Skip(1).ToArray();
        if (command is "--help" or "-h" or "help")
        {
            stdout.WriteLine(Usage);
            return 0;
        }
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            stdout.WriteLine(CommandHelp(command));
            return 0;
        }
        try
        {
            return command switch
            {
                "train" => TrainCommand.Run(rest, stdout),
                "eval" => EvalCommand.Run(rest, stdout),
                "predict" => PredictCommand.Run(rest, stdout),
                "export" => ExportCommand.Run(rest, stdout),
                "bench" => BenchCommand.Run(rest, stdout),
                "info" => InfoCommand.Run(rest, stdout),
                "kernels" => KernelsCommand.Run(rest, stdout),
                _ => throw new ViTScratchException($"vit: unknown command '{command}' (commands: train, eval, predict, export, bench, info, kernels)"),
            };
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

    private static string CommandHelp(string command) => command switch
    {
        "train" => TrainArgs.Help,
        "eval" => EvalCommand.Help,
        "predict" => PredictCommand.Help,
        "export" => ExportCommand.Help,
        "bench" => BenchCommand.Help,
        "info" => "vit info: lists devices, presets and their parameter counts",
        "kernels" => KernelsCommand.Help,
        _ => Usage,
    };
}
