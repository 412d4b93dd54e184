namespace ViTScratch.Kernels;

/// <summary>
/// A run of float32 values that lives wherever its backend keeps memory: a managed array for the
/// CPU backend, device memory for ILGPU. Only the backend that made a buffer can read it.
/// Slices share memory with their parent and never free it.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    protected DeviceBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
    }

    public int Length { get; }

    public virtual void Dispose() => GC.SuppressFinalize(this);

    public override string ToString() => $"{GetType().Name}[{Length}]";
}
