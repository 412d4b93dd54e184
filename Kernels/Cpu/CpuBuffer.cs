namespace ViTScratch.Kernels.Cpu;

/// <summary>A CPU buffer: a window [Offset, Offset + Length) of a managed float array.</summary>
internal sealed class CpuBuffer : DeviceBuffer
{
    public CpuBuffer(float[] array, int offset, int length) : base(length)
    {
        if ((uint)offset > (uint)array.Length || length > array.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) is outside a buffer of {array.Length}");
        Array = array;
        Offset = offset;
    }

    public float[] Array { get; }
    public int Offset { get; }

    public Span<float> Span => Array.AsSpan(Offset, Length);

    public static CpuBuffer Of(DeviceBuffer buffer) => buffer as CpuBuffer
        ?? throw new ArgumentException($"the CPU backend was handed a {buffer.GetType().Name}; tensors of different devices cannot be mixed");
}
