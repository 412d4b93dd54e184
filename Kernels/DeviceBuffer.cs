namespace ViTScratch.Kernels;

/// <summary>
/// A run of float32 values that lives wherever its backend keeps memory: a managed array for the
/// CPU backend, device memory for ILGPU. Only the backend that made a buffer can read it.
/// Slices share memory with their parent and never free it.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    /// <summary>For a backend's own buffer type: records the <paramref name="length"/> in floats.</summary>
    protected DeviceBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
    }

    /// <summary>Number of floats the buffer holds.</summary>
    public int Length { get; }

    /// <summary>Frees the memory the buffer owns (a slice owns none); the buffer cannot be used afterwards.</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>The buffer's type and length, e.g. "CpuBuffer[1024]".</summary>
    public override string ToString() => $"{GetType().Name}[{Length}]";
}
