using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Cli;

/// <summary>
/// `vit train`'s view of a run: a progress bar per epoch on the console, and curves.png in the run
/// directory after every epoch. A plot that cannot be written is one warning line in
/// <paramref name="log"/>; training goes on.
/// </summary>
public sealed class ConsoleTrainingObserver(TextWriter log, string runDirectory, string title) : ITrainingObserver
{
    private ProgressBar? _bar;

    public void EpochStarted(int epoch, int epochs, int steps) => _bar = new ProgressBar($"epoch {epoch}/{epochs}", steps);

    public bool WantsProgress(int done) => _bar?.WillDraw(done) ?? false;

    public void Progress(int done, long images, float loss, float accuracy, float lr) => _bar?.Report(done, images, loss, accuracy, lr);

    public void EpochCompleted(IReadOnlyList<EpochMetrics> metrics)
    {
        // ScottPlot and Skia throw more than I/O exceptions (a directory in the way, a missing
        // native library): any failure of the plot costs the plot only.
        try { Curves.Save(Path.Combine(runDirectory, "curves.png"), metrics, title); }
        catch (Exception e) { log.WriteLine($"warning: curves.png not written ({e.Message}); training goes on"); }
    }
}
