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
        {
            double tail = Math.Clamp((double)(step - RestartStep) / Math.Max(1, TotalSteps - RestartStep), 0, 1);
            return (float)(MinLr + (RestartLr - MinLr) * 0.5 * (1 + Math.Cos(Math.PI * tail)));
        }
        if (step <= WarmupSteps && WarmupSteps > 0) return BaseLr * step / WarmupSteps;
        if (!Cosine) return BaseLr;
        int decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return (float)(MinLr + (BaseLr - MinLr) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
