using ViTScratch.Training.Cli;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>`vit train`: a new run from flags, or `--resume DIR|FILE` to continue one exactly.</summary>
public static class TrainCommand
{
    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new ArgParser("train", args);
        TrainOptions options;
        string? resumeFrom = null;
        if (a.Has("resume"))
        {
            string target = a.Optional("resume") ?? throw new ViTScratchException("vit train: --resume needs a run directory or a last.safetensors file");
            resumeFrom = Directory.Exists(target) ? Path.Combine(target, "last.safetensors") : target;
            var file = TrainingCheckpoint.Read(resumeFrom);
            options = TrainingCheckpoint.ReadOptions(file, resumeFrom);
            // A resumed run keeps its own settings; only where it runs may change.
            options = options with
            {
                Device = a.Choice("device", options.Device, "auto", "cpu", "cuda", "ilgpu-cpu"),
                Workers = a.Int("workers", options.Workers, 0, 64),
                DataDir = a.Optional("data") ?? options.DataDir,
                OutDir = Path.GetDirectoryName(Path.GetFullPath(resumeFrom))!,
            };
            a.RejectUnknown();
        }
        else
        {
            options = TrainOptions.Parse(a);
            a.RejectUnknown();
        }

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return; // a second Ctrl+C kills the process
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCtrlC;
        try
        {
            using var trainer = new Trainer(options, stdout, resumeFrom: resumeFrom);
            bool finished = trainer.Run(cancel.Token);
            if (!finished) return 130;
            var m = trainer.Metrics;
            if (m.Count > 0)
            {
                var best = m.MaxBy(r => r.TestAccuracy)!;
                stdout.WriteLine($"done: best test accuracy {best.TestAccuracy * 100:F2}% (epoch {best.Epoch}), total {ProgressBar.Format(m.Sum(r => r.Seconds))} of training; see {Path.Combine(options.OutDir, "curves.png")}");
            }
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCtrlC;
        }
    }
}
