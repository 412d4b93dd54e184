namespace ViTScratch.Training.Optim;

/// <summary>
/// Linear warmup from 0 to the base rate over <see cref="WarmupSteps"/>, then cosine decay to
/// <see cref="MinLr"/> at <see cref="TotalSteps"/>. Evaluated per optimizer step (not per epoch),
/// so warmup is smooth even when an epoch is thousands of steps. Step numbers start at 1.
/// With <see cref="RestartLr"/> &gt; 0, the steps after <see cref="RestartStep"/> follow a second
/// cosine of their own, from RestartLr down to MinLr at TotalSteps (the unmasked epochs'
/// schedule, --unmasked-lr).
/// </summary>
public sealed record LrSchedule(float BaseLr, int WarmupSteps, int TotalSteps, float MinLr = 0f, bool Cosine = true,
    int RestartStep = 0, float RestartLr = 0f)
{
    /// <summary>The learning rate of optimizer step <paramref name="step"/> (1-based).</summary>
    public float At(int step)
    {
        if (RestartLr > 0 && step > RestartStep)
            return CosineFrom(RestartLr, step - RestartStep, TotalSteps - RestartStep);
        if (step <= WarmupSteps && WarmupSteps > 0) return BaseLr * step / WarmupSteps;
        if (!Cosine) return BaseLr;
        return CosineFrom(BaseLr, step - WarmupSteps, TotalSteps - WarmupSteps);
    }

    // From `peak` down to MinLr over `steps` steps (at least one); `done` of them taken.
    private float CosineFrom(float peak, int done, int steps)
    {
        double progress = Math.Clamp((double)done / Math.Max(1, steps), 0, 1);
        return (float)(MinLr + (peak - MinLr) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
