using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Training.Optim;

namespace ViTScratch.Training;

/// <summary>
/// One training step in the form a CUDA graph can hold, captured once and replayed (--cuda-graph;
/// design in docs/kernels.md, "CUDA graphs"). The step's device work is the ordinary step's, in the
/// same order, so its results are the same bits; what changes is where the values that differ from
/// step to step live:
/// <list type="bullet">
/// <item>the batch: uploaded into two fixed device tensors (images, labels) before the step, outside the graph;</item>
/// <item>the learning rate, the step count and AdamW's bias corrections: written to a small device
/// buffer before the step (<see cref="Optimizer.PrepareDeviceStep"/>), read there by the update kernels;</item>
/// <item>the loss: read back after the step, outside the graph, and checked for NaN there.</item>
/// </list>
/// Step 1 runs uncaptured: it compiles the kernels and warms the buffer pool and the backend's
/// workspaces, so that the region of step 2 allocates nothing. Step 2 is recorded inside a region
/// (<see cref="GpuKernels.BeginRegion"/>, which also refuses any allocation, transfer or host
/// synchronisation), instantiated and launched; from step 3 on a step is one graph launch. Every
/// pooled buffer the capture used is pinned in the device's pool, and the workspaces are pinned, for
/// the graph's lifetime, so its addresses stay valid. On a backend that cannot capture (ILGPU's CPU
/// simulator) every step after the first runs the prepared form inside a guard-only region: the
/// tests' way to show the region is capturable without a GPU.
/// </summary>
internal sealed class CapturedStep : IDisposable
{
    private readonly Device _device;
    private readonly GpuKernels _gpu;
    private readonly Optimizer _optimizer;
    private readonly Func<Tensor, Tensor, Tensor> _body;
    private readonly Tensor _images, _labels;
    private readonly HashSet<DeviceBuffer> _graphBuffers = new(ReferenceEqualityComparer.Instance);
    private IDisposable? _workspacePin;
    private CudaGraph? _graph;
    private DeviceBuffer? _loss;
    private int _steps;

    /// <param name="device">An ILGPU device (cuda captures; ilgpu-cpu runs the prepared form).</param>
    /// <param name="optimizer">The optimizer <paramref name="body"/> steps with <see cref="Optimizer.StepOnDevice"/>.</param>
    /// <param name="imageShape">The batch's image shape [B, C, H, W]; labels are [B].</param>
    /// <param name="body">
    /// Queues one step from the fixed inputs (images, labels) and returns the loss: forward, loss,
    /// Backward, <see cref="Optimizer.StepOnDevice"/>, ZeroGrad and whatever device-side counting the
    /// caller wants. It may only queue device work: no Item, no ToArray, no value read on the host.
    /// </param>
    public CapturedStep(Device device, Optimizer optimizer, int[] imageShape, Func<Tensor, Tensor, Tensor> body)
    {
        _gpu = device.Kernels as GpuKernels
            ?? throw new ViTScratchException($"--cuda-graph needs --device cuda: the {device.Name} backend launches no GPU kernels to capture (drop --cuda-graph)");
        _device = device;
        _optimizer = optimizer;
        _body = body;
        if (_gpu.CanCapture) _gpu.UseCaptureStream(); // before the inputs exist, so everything of the step is ordered on it
        _images = Tensor.Zeros(device, imageShape);
        _labels = Tensor.Zeros(device, imageShape[0]);
    }

    /// <summary>Whether steps are captured and replayed (CUDA), rather than run in the prepared form each time.</summary>
    public bool Captures => _gpu.CanCapture;

    /// <summary>The captured graph (null before step 2, and always on the simulator).</summary>
    public CudaGraph? Graph => _graph;

    /// <summary>Kernel launches the step's device work takes, counted while step 1 (uncaptured) queued it.</summary>
    public long KernelLaunchesPerStep { get; private set; }

    /// <summary>Runs one step on <paramref name="images"/> and <paramref name="labels"/> with learning rate <paramref name="lr"/>; returns the loss.</summary>
    public float Run(ReadOnlySpan<float> images, ReadOnlySpan<float> labels, float lr)
    {
        _images.CopyFrom(images);
        _labels.CopyFrom(labels);
        _optimizer.PrepareDeviceStep(lr);
        _steps++;
        if (_graph is not null)
        {
            _gpu.Replay(_graph);
            return ReadLoss();
        }
        if (_steps == 1) return Warm();
        return Captures ? Capture() : Prepared();
    }

    // Step 1: uncaptured. Compiles every kernel and grows the pool and the workspaces to the step's needs.
    private float Warm()
    {
        using var scope = new TensorScope();
        long before = _gpu.KernelLaunches;
        var loss = _body(_images, _labels);
        KernelLaunchesPerStep = _gpu.KernelLaunches - before;
        return loss.Item();
    }

    // The simulator's steps: the region is a guard only, and the work runs as it is queued.
    private float Prepared()
    {
        using var scope = new TensorScope();
        Tensor loss;
        using (var region = _gpu.BeginRegion(capture: false))
        {
            loss = _body(_images, _labels);
            region.End();
        }
        return loss.Item();
    }

    // Step 2 on CUDA: record the step, instantiate it, launch it (a capture runs nothing).
    private float Capture()
    {
        using (new TensorScope())
        {
            _device.LogRents(_graphBuffers);
            try
            {
                Tensor loss;
                using (var region = _gpu.BeginRegion(capture: true))
                {
                    loss = _body(_images, _labels);
                    _graph = region.End();
                }
                _loss = loss.Data;
            }
            finally
            {
                _device.LogRents(null);
            }
        }
        // The scope has returned the step's buffers to the pool; they stay there, unfreed, for the graph.
        _device.Pin(_graphBuffers);
        _workspacePin = _gpu.PinWorkspaces();
        _gpu.Replay(_graph!);
        return ReadLoss();
    }

    private float ReadLoss()
    {
        Span<float> one = stackalloc float[1];
        _gpu.Download(_loss!, one);
        return one[0];
    }

    /// <summary>Destroys the graph (after the device has finished with it) and unpins its buffers.</summary>
    public void Dispose()
    {
        if (_graph is not null)
        {
            _gpu.Synchronize();
            _graph.Dispose();
            _graph = null;
        }
        _device.Unpin(_graphBuffers);
        _workspacePin?.Dispose();
        _images.Dispose();
        _labels.Dispose();
    }
}
