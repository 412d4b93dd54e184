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
        DeviceBuffer buffer;
        if (_free.TryGetValue(length, out var stack) && stack.Count > 0) buffer = stack.Pop();
        else
        {
            PoolMisses++;
            buffer = Kernels.Allocate(length);
        }
        _rentLog?.Add(buffer);
        return buffer;
    }

    // ---- buffers held by a CUDA graph (Training/CapturedStep.cs) ----------------------------------
    // A captured step holds the addresses of every pooled buffer it used. Those buffers go back to
    // the pool after the capture like any other (a replay writes each before reading it, and
    // everything on the device runs in stream order, so other steps may borrow them in between),
    // but they must never be freed while the graph lives: TrimPool keeps them.
    private HashSet<DeviceBuffer>? _rentLog;
    private readonly HashSet<DeviceBuffer> _pinned = new(ReferenceEqualityComparer.Instance);

    /// <summary>Adds every buffer rented from now on to <paramref name="log"/>; null stops logging.</summary>
    internal void LogRents(HashSet<DeviceBuffer>? log) => _rentLog = log;

    /// <summary>Keeps <paramref name="buffers"/> through <see cref="TrimPool"/> until <see cref="Unpin"/>.</summary>
    internal void Pin(IEnumerable<DeviceBuffer> buffers) => _pinned.UnionWith(buffers);

    /// <summary>Lets <see cref="TrimPool"/> free <paramref name="buffers"/> again.</summary>
    internal void Unpin(IEnumerable<DeviceBuffer> buffers) => _pinned.ExceptWith(buffers);

    internal void Return(DeviceBuffer buffer)
    {
        if (!_free.TryGetValue(buffer.Length, out var stack)) _free[buffer.Length] = stack = new Stack<DeviceBuffer>();
        stack.Push(buffer);
    }

    /// <summary>Frees every pooled buffer (device memory goes back to the driver), except those a captured CUDA graph still uses.</summary>
    public void TrimPool()
    {
        foreach (var stack in _free.Values)
        {
            var kept = stack.Where(_pinned.Contains).ToList();
            while (stack.Count > 0)
            {
                var b = stack.Pop();
                if (!_pinned.Contains(b)) b.Dispose();
            }
            foreach (var b in kept) stack.Push(b);
        }
    }

    /// <summary>Frees the buffer pool and the backend; tensors of this device cannot be used afterwards.</summary>
    public void Dispose()
    {
        _pinned.Clear(); // the backend and every graph on it go now
        TrimPool();
        Kernels.Dispose();
    }

    /// <summary>The device's <see cref="Name"/>.</summary>
    public override string ToString() => Name;
}
