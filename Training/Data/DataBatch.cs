namespace ViTScratch.Training.Data;

/// <summary>
/// One batch in host memory: images as float32 [Count, C, H, W] and class indices as ints [Count].
///
/// Buffers are pooled by the <see cref="DataLoader"/>: the arrays have room for a full batch and
/// only the first Count images / labels are valid (the last batch of an epoch may be partial) —
/// use the *Span properties. Dispose the batch when done with it to return it to the pool; the
/// data must not be used after that. An undisposed batch is simply garbage-collected.
///
/// Without Mixup/CutMix, LabelsB equals LabelsA and Lambda is 1. With them, train on
/// Lambda·CE(LabelsA) + (1−Lambda)·CE(LabelsB).
/// </summary>
public sealed class DataBatch : IDisposable
{
    private readonly DataLoader.BatchPool? _pool;
    private int _returned;

    internal DataBatch(int capacity, int channels, int height, int width, DataLoader.BatchPool? pool)
    {
        Capacity = capacity; Channels = channels; Height = height; Width = width;
        Images = new float[capacity * channels * height * width];
        LabelsA = new int[capacity];
        LabelsB = new int[capacity];
        _floatLabelsA = new float[capacity];
        _floatLabelsB = new float[capacity];
        SampleIndices = new int[capacity];
        _pool = pool;
    }

    /// <summary>The epoch it belongs to.</summary>
    public int Epoch { get; internal set; }
    /// <summary>Batch index within the epoch (0-based); resume by starting the epoch at the next one.</summary>
    public int Index { get; internal set; }
    /// <summary>Number of valid images (≤ Capacity).</summary>
    public int Count { get; internal set; }
    /// <summary>Images the buffers hold (the batch size).</summary>
    public int Capacity { get; }
    /// <summary>Channels per image.</summary>
    public int Channels { get; }
    /// <summary>Image height.</summary>
    public int Height { get; }
    /// <summary>Image width.</summary>
    public int Width { get; }
    /// <summary>Floats per image.</summary>
    public int ImageSize => Channels * Height * Width;

    /// <summary>Pooled storage; valid prefix Count·C·H·W. Prefer <see cref="ImagesSpan"/>.</summary>
    public float[] Images { get; }
    /// <summary>Pooled storage: the class index of each image (the first Count are valid). Prefer <see cref="LabelsASpan"/>.</summary>
    public int[] LabelsA { get; }
    /// <summary>Pooled storage: with Mixup/CutMix, the class mixed into each image; else the same as LabelsA.</summary>
    public int[] LabelsB { get; }
    /// <summary>Dataset index of each image (for debugging, tests and per-sample reports).</summary>
    public int[] SampleIndices { get; }
    /// <summary>The weight of LabelsA (1 without mixing).</summary>
    public float Lambda { get; internal set; } = 1f;
    /// <summary>Whether Mixup or CutMix mixed this batch.</summary>
    public bool IsMixed => Lambda < 1f;

    /// <summary>The valid images, shape [Count, C, H, W], each CHW.</summary>
    public Span<float> ImagesSpan => Images.AsSpan(0, Count * ImageSize);
    /// <summary>The class index of each valid image, [Count]: the same as <see cref="LabelsASpan"/> (what <c>Ops.CrossEntropy</c> takes).</summary>
    public Span<int> Labels => LabelsA.AsSpan(0, Count);
    /// <summary>The valid part of LabelsA, [Count].</summary>
    public Span<int> LabelsASpan => LabelsA.AsSpan(0, Count);
    /// <summary>The valid part of LabelsB, [Count].</summary>
    public Span<int> LabelsBSpan => LabelsB.AsSpan(0, Count);
    /// <summary>The images' shape, [Count, C, H, W].</summary>
    public int[] Shape => [Count, Channels, Height, Width];

    // The trainer's loss and accuracy kernels read labels from a float device buffer (exact below
    // 2^24), so it uploads them through these pooled copies rather than allocating per step.
    private readonly float[] _floatLabelsA, _floatLabelsB;

    /// <summary>LabelsA of the valid images as floats, for upload to a float label tensor.</summary>
    internal ReadOnlySpan<float> LabelsAAsFloats() => AsFloats(LabelsA, _floatLabelsA);

    /// <summary>LabelsB of the valid images as floats, for upload to a float label tensor.</summary>
    internal ReadOnlySpan<float> LabelsBAsFloats() => AsFloats(LabelsB, _floatLabelsB);

    private ReadOnlySpan<float> AsFloats(int[] labels, float[] floats)
    {
        for (int i = 0; i < Count; i++) floats[i] = labels[i];
        return floats.AsSpan(0, Count);
    }

    internal void MarkRented() => Volatile.Write(ref _returned, 0);

    /// <summary>Returns the buffers to the loader's pool.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _returned, 1) == 0) _pool?.Return(this);
    }
}
