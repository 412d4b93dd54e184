using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace ViTScratch.Kernels.Gpu;

/// <summary>Where the ILGPU kernels run.</summary>
internal enum GpuDeviceKind
{
    /// <summary>The first NVIDIA GPU, through CUDA.</summary>
    Cuda,
    /// <summary>
    /// ILGPU's CPU accelerator simulating a device with 32-wide warps, so warp shuffles and
    /// barriers behave as on an NVIDIA GPU. Hundreds of times slower than the SIMD CPU backend:
    /// a correctness simulator for tests on machines without a GPU.
    /// </summary>
    CpuSimulator,
}

/// <summary>
/// The ILGPU backend: every op of <see cref="IKernels"/> as a hand-written GPU kernel in C#,
/// compiled to PTX by ILGPU. One kernel family per partial file (GpuKernels.Elementwise.cs,
/// GpuKernels.Softmax.cs, ...), each opening with its algorithm and launch geometry.
/// All ops only enqueue work on one stream (the accelerator's default stream, or the capture
/// stream once <see cref="UseCaptureStream"/> is called); the host waits in
/// <see cref="Download"/> and <see cref="Synchronize"/> only.
/// Kernels assume 32-lane warps; both device kinds provide them.
/// </summary>
internal sealed partial class GpuKernels : IKernels
{
    /// <summary>Threads per group of the one-dimensional kernels: 8 warps.</summary>
    internal const int GroupSize = 256;
    internal const int WarpSize = 32;
    internal const int WarpsPerGroup = GroupSize / WarpSize;

    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly int _maxGrid;
    // Groups that keep the whole device busy: kernels whose natural grid is smaller (a bias
    // gradient, a weight gradient with a long K) split their loop into slices to reach it.
    private readonly int _targetGroups;
    // The smallest slices worth a group of their own: rows of a column sum, K of a matmul.
    private readonly int _minRowsPerPart, _minKPerSplit;

    public GpuKernels(GpuDeviceKind kind)
    {
        if (kind == GpuDeviceKind.Cuda)
        {
            _context = Context.Create(b => Configure(b.Cuda()));
            var devices = _context.GetCudaDevices();
            if (devices.Count == 0)
            {
                _context.Dispose();
                throw new ViTScratchException("device 'cuda': no CUDA device was found; use --device cpu");
            }
            _accelerator = devices[0].CreateAccelerator(_context);
            // Grid-stride loops need no more groups than keep every SM busy a few times over.
            _maxGrid = Math.Max(1, _accelerator.NumMultiprocessors * 16);
            _targetGroups = _accelerator.NumMultiprocessors * 2;
            (_minRowsPerPart, _minKPerSplit) = (64, 128);
            Name = "cuda";
        }
        else
        {
            // 32-wide warps x 8 warps = 256 threads per group, one simulated multiprocessor.
            var device = new CPUDevice(numThreadsPerWarp: WarpSize, numWarpsPerMultiprocessor: WarpsPerGroup, numMultiprocessors: 1);
            _context = Context.Create(b => Configure(b.CPU(device)));
            _accelerator = _context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
            _maxGrid = 16;
            // One simulated multiprocessor, but the same split logic as on a GPU, with small
            // thresholds so the tests' tiny shapes take the split paths too.
            _targetGroups = 8;
            (_minRowsPerPart, _minKPerSplit) = (8, 32);
            Name = "ilgpu-cpu";
        }
        if (_accelerator.WarpSize != WarpSize)
        {
            _accelerator.Dispose();
            _context.Dispose();
            throw new ViTScratchException($"the ILGPU device has {_accelerator.WarpSize}-wide warps; these kernels need 32");
        }
        _stream = _accelerator.DefaultStream;
        _unit = (GpuBuffer)Allocate(1);
    }

    public string Name { get; }

    // The matmul dispatcher (GpuKernels.MatMul.cs) reads this: Tf32/Bf16 run the tensor-core kernels.
    public MathPrecision Precision { get; set; } = MathPrecision.Fp32;

    /// <summary>
    /// Context settings shared by the runtime and the PTX emitter, so the PTX that ptxas checks is
    /// the PTX that runs. EnableAlgorithms supplies the device implementations of MathF.Exp, Log,
    /// Sqrt used by the kernels (ILGPU's core has no intrinsic for them). Profiling lets
    /// the GPU benchmarks (Benchmarks/Gpu, Benchmarks/Lab) time kernels with device events; it costs nothing until a marker is added.
    /// </summary>
    internal static Context.Builder Configure(Context.Builder builder) =>
        builder.EnableAlgorithms().Optimize(OptimizationLevel.O1).Profiling();

    /// <summary>The ILGPU accelerator (for benchmarks and diagnostics).</summary>
    public Accelerator Accelerator => _accelerator;

    // A one-element buffer handed to kernels whose optional input is absent (gradNormSq == null),
    // so every kernel keeps one signature.
    private readonly GpuBuffer _unit;

    // ---- memory --------------------------------------------------------------------------------

    public DeviceBuffer Allocate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ThrowIfInRegion($"an allocation of {length} floats");
        var buffer = _accelerator.Allocate1D<float>(Math.Max(length, 1));
        buffer.MemSetToZero();
        // ILGPU cannot allocate zero elements, so an empty buffer owns one and shows none.
        return new GpuBuffer(buffer.View.BaseView.SubView(0, length), _accelerator, buffer);
    }

    public DeviceBuffer Slice(DeviceBuffer buffer, int offset, int length)
    {
        var b = B(buffer);
        if ((uint)offset > (uint)b.Length || length > b.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) is outside a buffer of {b.Length}");
        return new GpuBuffer(b.View.SubView(offset, length), _accelerator);
    }

    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination)
    {
        var view = B(destination).View;
        if (source.Length > view.Length) throw new ArgumentException($"uploading {source.Length} floats into a buffer of {view.Length}");
        ThrowIfInRegion($"an upload of {source.Length} floats");
        if (source.Length == 0) return;
        view.SubView(0, source.Length).CopyFromCPU(source);
    }

    public void Download(DeviceBuffer source, Span<float> destination)
    {
        var view = B(source).View;
        if (destination.Length < view.Length) throw new ArgumentException($"downloading {view.Length} floats into a span of {destination.Length}");
        ThrowIfInRegion($"a download of {view.Length} floats to the host");
        if (view.Length == 0) return;
        _accelerator.Synchronize();
        view.CopyToCPU(destination[..(int)view.Length]);
    }

    public void Synchronize()
    {
        ThrowIfInRegion("a host synchronisation");
        _accelerator.Synchronize();
    }

    public void Dispose()
    {
        AbandonRegion();
        _accelerator.Synchronize();
        _unit.Dispose();
        foreach (var s in _workspaces.Values) s.Dispose();
        foreach (var s in _retiredWorkspaces) s.Dispose();
        DisposeCaptureStream();
        _accelerator.Dispose();
        _context.Dispose();
    }

    private GpuBuffer B(DeviceBuffer buffer) => GpuBuffer.Of(buffer, _accelerator);
    private ArrayView<float> V(DeviceBuffer buffer) => GpuBuffer.Of(buffer, _accelerator).View;

    // ---- device workspaces -------------------------------------------------------------------------
    // Named device buffers for a kernel's intermediate results (split-K and two-stage reduction
    // partials, layernorm's parameter partials, attention's D): grown and never shrunk, so
    // steady-state training allocates nothing. While a CUDA graph holds their addresses
    // (PinWorkspaces), a workspace that grows keeps its old buffer alive until the graph is gone.
    private readonly Dictionary<string, GpuBuffer> _workspaces = new();

    private ArrayView<float> Workspace(string name, int length)
    {
        if (!_workspaces.TryGetValue(name, out var s) || s.Length < length)
        {
            // Freeing device memory waits for queued kernels (cuMemFree synchronises), so a kernel
            // still reading the old workspace is never cut short.
            if (s is not null && _workspacePins > 0) _retiredWorkspaces.Add(s);
            else s?.Dispose();
            s = (GpuBuffer)Allocate(length);
            _workspaces[name] = s;
        }
        return s.View.SubView(0, length);
    }

    // ---- launch geometry --------------------------------------------------------------------------

    /// <summary>Grid-stride launch over <paramref name="n"/> items with 256-thread groups.</summary>
    private KernelConfig Linear(long n) =>
        new((int)Math.Clamp((n + GroupSize - 1) / GroupSize, 1, _maxGrid), GroupSize);

    /// <summary>One warp per row, 8 rows per group.</summary>
    private static KernelConfig WarpPerRow(int rows) =>
        new((rows + WarpsPerGroup - 1) / WarpsPerGroup, GroupSize);
}
