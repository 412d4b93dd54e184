using System.CommandLine;
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

    public static Command Create()
    {
        var flags = new TrainArgs();
        var resume = new Option<string>("--resume")
        {
            Arity = ArgumentArity.ZeroOrOne, HelpName = "DIR|FILE",
            Description = "continue a run from its last.safetensors (the run directory or the file), on the data it records (--data DIR " +
                          "re-targets it, with a warning if the data differs); it keeps its own settings: only " +
                          string.Join(", ", flags.ResumeFlags.Select(f => f.Name)) + " and --download may be given with it",
        };
        var force = Flags.Switch("--force", "replace the run in --out (deletes its checkpoints and metrics)");
        var download = Flags.Switch("--download", "with --data: download the dataset into DIR when it is not there");
        var command = new Command("train", TrainArgs.Description);
        foreach (var option in flags.Options) command.Options.Add(option);
        command.Options.Add(download);
        command.Options.Add(force);
        command.Options.Add(resume);
        command.SetAction(r => Run(r, flags, resume, force, download, r.InvocationConfiguration.Output));
        return command;
    }

    private static int Run(ParseResult a, TrainArgs flags, Option<string> resume, Option<bool> force, Option<bool> download, TextWriter stdout)
    {
        TrainOptions options;
        string? resumeFrom = null;
        bool retargeted = false;
        var dataOptions = new DatasetOptions { DownloadIntoDataDir = a.GetValue(download) };
        if (a.Given(resume))
        {
            string target = a.GetValue(resume) ?? throw new ViTScratchException("vit train: --resume needs a run directory or a last.safetensors file");
            var fixedSetting = flags.Options.Append(force).FirstOrDefault(o => a.Given(o) && !flags.ResumeFlags.Contains(o));
            if (fixedSetting is not null)
                throw new ViTScratchException($"vit train: {fixedSetting.Name} cannot be given with --resume: a resumed run keeps its own settings " +
                    $"(only {string.Join(", ", flags.ResumeFlags.Select(f => f.Name))} and --download may change); start a new run with --out DIR to change it");
            resumeFrom = Directory.Exists(target) ? Path.Combine(target, "last.safetensors") : target;
            var file = TrainingCheckpoint.Read(resumeFrom);
            options = TrainingCheckpoint.ReadOptions(file, resumeFrom, forResume: true);
            // The run's data: where the checkpoint says it was read from (an absolute path, so the
            // working directory does not matter), unless --data re-targets it on purpose.
            string? dataFlag = a.GetValue(flags.Data);
            retargeted = dataFlag is not null;
            string? recorded = DataProvenance.FromMetadata(file.Metadata, resumeFrom)?.Path;
            // A resumed run keeps its own settings; only where and in what arithmetic it runs may change.
            options = options with
            {
                Device = a.Given(flags.Device) ? a.GetValue(flags.Device)! : options.Device,
                Workers = a.Given(flags.Workers) ? a.GetValue(flags.Workers) : options.Workers,
                Precision = a.Given(flags.Precision) ? a.GetValue(flags.Precision)! : options.Precision,
                CudaGraph = a.Given(flags.CudaGraph) ? a.GetValue(flags.CudaGraph) : options.CudaGraph,
                DataDir = dataFlag ?? (string.IsNullOrEmpty(recorded) ? options.DataDir : recorded),
                OutDir = Path.GetDirectoryName(Path.GetFullPath(resumeFrom))!,
            };
        }
        else
        {
            options = flags.Parse(a);
            // Without --out, a second run of the same command goes beside the first, never over it.
            if (!a.Given(flags.Out) && !a.GetValue(force))
            {
                string free = RunDirectory.FirstFree(options.OutDir);
                if (free != options.OutDir)
                {
                    stdout.WriteLine($"note    {options.OutDir} holds an earlier run; this one goes to {free} (--out DIR to choose, --resume to continue)");
                    options = options with { OutDir = free };
                }
            }
        }
        bool overwrite = resumeFrom is null && a.GetValue(force);

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

        using var trainer = new Trainer(options, stdout, dataOptions, resumeFrom, retargeted, overwrite: overwrite,
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
