using System.Runtime.InteropServices;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>
/// `vit train`: a new run from flags, or `--resume DIR|FILE` to continue one exactly.
/// SIGINT (Ctrl+C) and SIGTERM (a scheduler, `docker stop`) both stop the run at the next safe
/// point with last.safetensors saved and the resume command printed (exit 130 and 143); a second
/// signal kills the process at once.
/// </summary>
public static class TrainCommand
{
    public const int ExitInterrupted = 130, ExitTerminated = 143;

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new ArgParser("train", args);
        TrainOptions options;
        string? resumeFrom = null;
        bool retargeted = false, force = false;
        var dataOptions = new DatasetOptions();
        if (a.Has("resume"))
        {
            string target = a.Optional("resume") ?? throw new ViTScratchException("vit train: --resume needs a run directory or a last.safetensors file");
            resumeFrom = Directory.Exists(target) ? Path.Combine(target, "last.safetensors") : target;
            var file = TrainingCheckpoint.Read(resumeFrom);
            options = TrainingCheckpoint.ReadOptions(file, resumeFrom);
            // The run's data: where the checkpoint says it was read from (an absolute path, so the
            // working directory does not matter), unless --data re-targets it on purpose.
            string? dataFlag = a.Optional("data");
            retargeted = dataFlag is not null;
            string? recorded = DataProvenance.FromMetadata(file.Metadata, resumeFrom)?.Path;
            // A resumed run keeps its own settings; only where it runs may change.
            options = options with
            {
                Device = a.Choice("device", options.Device, "auto", "cpu", "cuda", "ilgpu-cpu"),
                Workers = a.Int("workers", options.Workers, 0, 64),
                DataDir = dataFlag ?? (string.IsNullOrEmpty(recorded) ? options.DataDir : recorded),
                OutDir = Path.GetDirectoryName(Path.GetFullPath(resumeFrom))!,
            };
            dataOptions.DownloadIntoDataDir = a.Flag("download");
            a.RejectUnknown();
        }
        else
        {
            options = TrainArgs.Parse(a);
            force = a.Flag("force");
            dataOptions.DownloadIntoDataDir = a.Flag("download");
            // Without --out, a second run of the same command goes beside the first, never over it.
            if (!a.Has("out") && !force)
            {
                string free = RunDirectory.FirstFree(options.OutDir);
                if (free != options.OutDir)
                {
                    stdout.WriteLine($"note    {options.OutDir} holds an earlier run; this one goes to {free} (--out DIR to choose, --resume to continue)");
                    options = options with { OutDir = free };
                }
            }
            a.RejectUnknown();
        }

        using var cancel = new CancellationTokenSource();
        int signals = 0;
        PosixSignal? stopSignal = null;
        void OnSignal(PosixSignalContext context)
        {
            // The first signal asks the trainer to stop at the next safe point; the second is left
            // to its default action, which ends the process at once.
            if (Interlocked.Increment(ref signals) > 1) return;
            context.Cancel = true;
            stopSignal = context.Signal;
            Console.Error.WriteLine($"\n{(context.Signal == PosixSignal.SIGTERM ? "SIGTERM" : "Ctrl+C")}: saving a checkpoint at the next safe point (again to abort at once)");
            cancel.Cancel();
        }
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        using var trainer = new Trainer(options, stdout, dataOptions, resumeFrom, retargeted, overwrite: force,
            observer: new ConsoleTrainingObserver(stdout, options.OutDir, $"{options.Model} on {options.Dataset}"));
        bool finished = trainer.Run(cancel.Token);
        if (!finished) return stopSignal == PosixSignal.SIGTERM ? ExitTerminated : ExitInterrupted;
        var m = trainer.Metrics;
        string total = ProgressBar.Format(m.Sum(r => r.Seconds));
        if (trainer.FinalTest is { } t)
            stdout.WriteLine($"done: test accuracy {t.TestAccuracy * 100:F2}% of {t.Checkpoint} (epoch {t.Epoch}, chosen on {t.SelectedOn}" +
                (t.SelectedOn == "val" ? $" at {t.ValAccuracy * 100:F2}%" : "") + $"), {total} of training; see {Path.Combine(options.OutDir, "curves.png")}");
        else if (m.Count > 0)
            stdout.WriteLine($"done: {m.Count} epochs, {total} of training; see {Path.Combine(options.OutDir, "curves.png")}");
        return 0;
    }
}
