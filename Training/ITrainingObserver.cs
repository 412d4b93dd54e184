using ViTScratch.Training.Runs;

namespace ViTScratch.Training;

/// <summary>
/// What a <see cref="Trainer"/> reports while it runs, besides its log lines: progress within an
/// epoch and each finished epoch. The `vit` runner draws its progress bar and curves.png from
/// these; the library itself has no console or plotting dependency.
/// </summary>
public interface ITrainingObserver
{
    /// <summary>Epoch <paramref name="epoch"/> (1-based) of <paramref name="epochs"/> begins, with <paramref name="steps"/> steps left to run in it.</summary>
    void EpochStarted(int epoch, int epochs, int steps);

    /// <summary>
    /// Whether a report after <paramref name="done"/> steps of this epoch would be shown. The
    /// trainer asks first because the running accuracy lives on the device and reading it waits for the device.
    /// </summary>
    bool WantsProgress(int done);

    /// <summary>Progress after <paramref name="done"/> steps of this epoch: <paramref name="images"/> seen in them, running loss and accuracy, learning rate.</summary>
    void Progress(int done, long images, float loss, float accuracy, float lr);

    /// <summary>
    /// An epoch ended and its checkpoint is saved; <paramref name="metrics"/> holds every epoch of
    /// the run so far. An exception thrown here costs a warning line in the log, not the run.
    /// </summary>
    void EpochCompleted(IReadOnlyList<EpochMetrics> metrics);
}
