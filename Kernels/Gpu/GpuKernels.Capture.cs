using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ViTScratch.Kernels.Gpu;

// Capture regions and the launch counter: what --cuda-graph needs from the backend.
//
// The capture stream: ILGPU's default CUDA stream is the legacy NULL stream, which cannot be
//   captured, so UseCaptureStream moves every later kernel launch to a stream of its own. It is a
//   blocking stream (CU_STREAM_DEFAULT): work ILGPU still queues on the NULL stream outside a
//   capture (uploads, memsets of new buffers, downloads) stays ordered with it both ways, so
//   nothing else in the backend has to change. On the simulator there is nothing to capture and
//   the kernels keep the accelerator's stream.
// A region (BeginRegion ... End) is the stretch of a step a graph holds. Inside it the backend
//   refuses (InvalidOperationException naming the call) everything a graph cannot contain or that
//   would make a replay differ from the capture: an allocation (a cold pool or a workspace that
//   grows), an upload, a download and a host synchronisation. With capture = false the region is
//   only this guard: the simulator runs a step's "prepared" form under it, which is how tests show
//   that the region needs none of those calls without a GPU.
// The launch counter counts every kernel launch the ops queue (GpuKernels.Loading.cs): the
//   difference over a step is the step's launches, the number a graph turns into one.
internal sealed partial class GpuKernels
{
    private AcceleratorStream _stream;          // where the ops' kernels go (Loading.cs)
    private CudaStream? _captureStream;         // owned; null until UseCaptureStream on CUDA
    private long _launches;
    private CaptureRegion? _region;
    private int _workspacePins;
    private readonly List<GpuBuffer> _retiredWorkspaces = new();

    /// <summary>Kernel launches queued so far by the ops (a captured launch counts once, when captured; a graph replay adds none).</summary>
    public long KernelLaunches => _launches;

    /// <summary>Replays of CUDA graphs queued so far (<see cref="Replay"/>).</summary>
    public long GraphLaunches { get; private set; }

    /// <summary>Whether this backend can capture CUDA graphs (CUDA; the simulator can only run the guard of a region).</summary>
    public bool CanCapture => _accelerator is CudaAccelerator;

    /// <summary>Whether a region (<see cref="BeginRegion"/>) is open.</summary>
    public bool InRegion => _region is not null;

    /// <summary>
    /// Moves every later kernel launch to a stream that can be captured (CUDA; nothing on the
    /// simulator). Loads the CUDA driver's graph entry points first, so a missing driver is one
    /// line here rather than a DllNotFoundException later.
    /// </summary>
    public void UseCaptureStream()
    {
        if (_accelerator is not CudaAccelerator cuda || _captureStream is not null) return;
        CudaGraph.RequireDriver();
        _captureStream = cuda.CreateStream(StreamFlags.CU_STREAM_DEFAULT);
        _stream = _captureStream;
    }

    /// <summary>
    /// Opens a region: from here until <see cref="CaptureRegion.End"/>, allocations, uploads,
    /// downloads and synchronisations throw. With <paramref name="capture"/> (CUDA only) the
    /// capture stream also starts recording instead of running.
    /// </summary>
    public CaptureRegion BeginRegion(bool capture)
    {
        if (_region is not null) throw new InvalidOperationException("a capture region is already open; regions do not nest");
        IntPtr stream = IntPtr.Zero;
        if (capture)
        {
            if (_captureStream is null)
                throw new InvalidOperationException(CanCapture ? "call UseCaptureStream before capturing: the default (NULL) stream cannot be captured"
                    : $"the {Name} backend cannot capture CUDA graphs; open the region with capture: false");
            stream = _captureStream.StreamPtr;
            CudaGraph.BeginCapture(stream);
        }
        return _region = new CaptureRegion(this, stream);
    }

    /// <summary>Queues one replay of <paramref name="graph"/> on the capture stream (outside any region).</summary>
    public void Replay(CudaGraph graph)
    {
        ThrowIfInRegion("a graph launch");
        if (_captureStream is null) throw new InvalidOperationException("Replay: no capture stream; graphs are captured on it (UseCaptureStream)");
        graph.Launch(_captureStream.StreamPtr);
        GraphLaunches++;
    }

    /// <summary>
    /// While the returned handle lives, a workspace that grows keeps its old buffer (a graph
    /// captured earlier still holds its address); disposing the last handle frees those buffers.
    /// </summary>
    public IDisposable PinWorkspaces()
    {
        _workspacePins++;
        return new WorkspacePin(this);
    }

    private sealed class WorkspacePin(GpuKernels owner) : IDisposable
    {
        private bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            if (--owner._workspacePins > 0 || owner._retiredWorkspaces.Count == 0) return;
            owner._accelerator.Synchronize();
            foreach (var s in owner._retiredWorkspaces) s.Dispose();
            owner._retiredWorkspaces.Clear();
        }
    }

    private void ThrowIfInRegion(string what)
    {
        if (_region is null) return;
        throw new InvalidOperationException($"{what} inside a capture region: a CUDA graph cannot contain it and a replay would not repeat it " +
            "(warm the buffer pool and workspaces with an uncaptured step first; upload inputs before the region and read results after it)");
    }

    // An exception inside a region (or a backend disposed with one open): end the capture, if any,
    // and throw away what it recorded, so the stream runs work again.
    private void AbandonRegion()
    {
        if (_region is null) return;
        if (_region.Stream != IntPtr.Zero) CudaGraph.AbortCapture(_region.Stream);
        _region = null;
    }

    private void DisposeCaptureStream()
    {
        _captureStream?.Dispose();
        _captureStream = null;
        _stream = _accelerator.DefaultStream;
    }

    /// <summary>An open region of <see cref="BeginRegion"/>: <see cref="End"/> closes it; disposing it without End abandons it.</summary>
    public sealed class CaptureRegion : IDisposable
    {
        private readonly GpuKernels _owner;

        internal CaptureRegion(GpuKernels owner, IntPtr stream)
        {
            _owner = owner;
            Stream = stream;
            LaunchesAtStart = owner._launches;
        }

        internal IntPtr Stream { get; }

        /// <summary>The backend's launch counter when the region opened.</summary>
        public long LaunchesAtStart { get; }

        /// <summary>Kernel launches queued inside the region so far.</summary>
        public long Launches => _owner._launches - LaunchesAtStart;

        /// <summary>Closes the region; returns the instantiated graph when it captured, else null.</summary>
        public CudaGraph? End()
        {
            if (!ReferenceEquals(_owner._region, this)) throw new InvalidOperationException("this capture region is not open");
            _owner._region = null;
            return Stream == IntPtr.Zero ? null : CudaGraph.EndCapture(Stream);
        }

        /// <summary>Abandons the region if <see cref="End"/> was not called (an exception while recording).</summary>
        public void Dispose()
        {
            if (ReferenceEquals(_owner._region, this)) _owner.AbandonRegion();
        }
    }
}
