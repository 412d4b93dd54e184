using ViTScratch.Kernels;

namespace ViTScratch.Engine;

/// <summary>
/// A compute device: one backend (<see cref="IKernels"/>) plus a pool of its buffers. Training
/// repeats the same shapes every step, so buffers released at the end of a step
/// (<see cref="TensorScope"/>) are handed out again by exact length and steady-state steps
/// allocate no device memory.
/// </summary>
public sealed class Device : IDisposable
{
    private readonly Dictionary<int, Stack<DeviceBuffer>> _free = new();

    /// <summary>A device over a backend of your own (tests, profiling); <see cref="Create"/> is the usual way.</summary>
    public Device(IKernels kernels) => Kernels = kernels;

    /// <summary>Creates a device by name: auto, cpu, cuda or ilgpu-cpu (see <see cref="BackendFactory"/>).</summary>
    public static Device Create(string name = "auto") => new(BackendFactory.Create(name));

    /// <summary>The backend that runs this device's ops (advanced: raw buffers, no autograd).</summary>
    public IKernels Kernels { get; }

    /// <summary>The backend's name, for logs ("cpu", "cuda: NVIDIA H100 ...").</summary>
    public string Name => Kernels.Name;

    /// <summary>Number of buffers the pool had to create because none of the right length was free.</summary>
    public long PoolMisses { get; private set; }

    /// <summary>A buffer of exactly <paramref name="length"/> floats with undefined contents.</summary>
    internal DeviceBuffer Rent(int length)
    {
        if (_free.TryGetValue(length, out var stack) && stack.Count > 0) return stack.Pop();
        PoolMisses++;
        return Kernels.Allocate(length);
    }

    internal void Return(DeviceBuffer buffer)
    {
        if (!_free.TryGetValue(buffer.Length, out var stack)) _free[buffer.Length] = stack = new Stack<DeviceBuffer>();
        stack.Push(buffer);
    }

    /// <summary>Frees every pooled buffer (device memory goes back to the driver).</summary>
    public void TrimPool()
    {
        foreach (var stack in _free.Values)
            while (stack.Count > 0) stack.Pop().Dispose();
        _free.Clear();
    }

    /// <summary>Frees the buffer pool and the backend; tensors of this device cannot be used afterwards.</summary>
    public void Dispose()
    {
        TrimPool();
        Kernels.Dispose();
    }

    /// <summary>The device's <see cref="Name"/>.</summary>
    public override string ToString() => Name;
}
