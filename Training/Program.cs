using ViTScratch.Training.Commands;

namespace ViTScratch.Training;

/// <summary>
/// `vit`: the console runner. User errors (bad flags, missing data, unreadable checkpoints) print
/// one line and exit with code 1; Ctrl+C during training saves last.safetensors and exits 130.
/// </summary>
public static class Program
{
    public const string Usage = """
        vit — Vision Transformers from scratch in C#

        usage: vit <command> [options]
          train      train a ViT (default: vit-micro on Fashion-MNIST, CPU-friendly)
          eval       evaluate a checkpoint on a test set
          predict    top-5 classes for an image file or a test-set index, optional attention map
          bench      training and inference images/s of a preset on a device
          info       devices, presets and parameter counts
          kernels    kernels ptx: write the PTX of every GPU kernel (no GPU needed);
                     kernels bench: time the GPU kernels against cuBLAS, unfused attention, copy rate

        'vit <command> --help' shows the options of a command.
        """;

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
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
                "bench" => BenchCommand.Run(rest, stdout),
                "info" => InfoCommand.Run(rest, stdout),
                "kernels" => KernelsCommand.Run(rest, stdout),
                _ => throw new ViTScratchException($"vit: unknown command '{command}' (commands: train, eval, predict, bench, info, kernels)"),
            };
        }
        catch (ViTScratchException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("cancelled");
            return 130;
        }
    }

    private static string CommandHelp(string command) => command switch
    {
        "train" => TrainOptions.Help,
        "eval" => EvalCommand.Help,
        "predict" => PredictCommand.Help,
        "bench" => BenchCommand.Help,
        "info" => "vit info: lists devices, presets and their parameter counts",
        "kernels" => KernelsCommand.Help,
        _ => Usage,
    };
}
