using ILGPU.Runtime;

namespace ViTScratch.Benchmarks.Gpu;

/// <summary>
/// Times work queued on an accelerator's default stream with device events (ILGPU profiling
/// markers), not host clocks: the GPU runs asynchronously, so a host stopwatch would time the
/// enqueue. Each sample brackets <c>inner</c> back-to-back launches (so launch gaps of tiny
/// kernels are averaged in, as they are in training) and the median of the samples is reported,
/// after warm-up calls that keep JIT, module load and handle creation out of the numbers.
/// </summary>
internal sealed class DeviceTimer(Accelerator accelerator, int samples)
{
    /// <summary>Median milliseconds of one call of <paramref name="op"/>.</summary>
    public double MedianMs(Action op)
    {
        op(); op();
        accelerator.Synchronize();
        // Size the batch of launches so one sample lasts about 2 ms: long enough that event
        // resolution (about 0.5 µs) is noise, short enough that many samples fit in a second.
        double single = Sample(op, 1);
        int inner = (int)Math.Clamp(Math.Ceiling(2.0 / Math.Max(single, 1e-4)), 1, 200);
        var ms = new double[samples];
        for (int s = 0; s < samples; s++) ms[s] = Sample(op, inner);
        Array.Sort(ms);
        return ms[samples / 2];
    }

    private double Sample(Action op, int inner)
    {
        var stream = accelerator.DefaultStream;
        using var start = stream.AddProfilingMarker();
        for (int i = 0; i < inner; i++) op();
        using var end = stream.AddProfilingMarker();
        return end.MeasureFrom(start).TotalMilliseconds / inner; // waits for the end event
    }
}
