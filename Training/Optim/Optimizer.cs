using System.Globalization;
using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Model;

namespace ViTScratch.Training.Optim;

/// <summary>A tensor the optimizer updates, its checkpoint name, and whether weight decay applies to it.</summary>
public sealed record OptimParam(string Name, Tensor Tensor, bool Decay)
{
    /// <summary>
    /// Every parameter of <paramref name="model"/>, named as in its checkpoints, with weight decay
    /// where the parameter asks for it (not biases, norms, the positional embedding or the cls token).
    /// </summary>
    public static IReadOnlyList<OptimParam> From(Module model) =>
        model.NamedParameters().Select(p => new OptimParam(p.Name, p.Parameter.Value, p.Parameter.WeightDecay)).ToList();
}

/// <summary>
/// Base of SGD and AdamW: owns the per-parameter state tensors, the gradient-norm buffer used for
/// clipping by global norm, and checkpointing of that state. A step never reads anything back to
/// the host: the squared norm is accumulated on the device and each update kernel reads it there.
///
/// The parameters are packed into one buffer (<see cref="FlatParameters"/>), those with weight
/// decay first, so a step is one gradient-norm sum, at most two update launches (with and without
/// decay) and one fill to zero the gradients, whatever the number of parameter tensors. The
/// update is elementwise, so this changes no value; only the gradient norm is summed in one pass
/// instead of tensor by tensor. Every parameter handed to the optimizer is updated on every step:
/// one that the loss does not reach has a zero gradient (AdamW still decays it), as in PyTorch
/// with zero_grad(set_to_none=False).
///
/// Constructing an optimizer moves its parameters' storage into those flat buffers, values and
/// gradients included: the <see cref="Tensor"/> objects (and the model's parameters) stay valid and
/// see the move, since no raw buffer of a tensor is public. A tensor can belong to one optimizer
/// only; a second one is refused with an error rather than left updating stale buffers.
/// </summary>
public abstract class Optimizer
{
    private readonly Tensor _gradNormSq;
    private readonly int[] _flatIndex;   // Params[i] is Flat.Tensors[_flatIndex[i]]

    private protected Optimizer(IReadOnlyList<OptimParam> parameters, float maxGradNorm)
    {
        if (parameters.Count == 0) throw new ViTScratchException("optimizer: no parameters to optimise");
        Params = parameters;
        MaxGradNorm = maxGradNorm;
        var order = Enumerable.Range(0, parameters.Count).OrderBy(i => parameters[i].Decay ? 0 : 1).ToArray();  // stable
        Flat = new FlatParameters(order.Select(i => parameters[i].Tensor).ToList());
        _flatIndex = new int[parameters.Count];
        for (int f = 0; f < order.Length; f++) _flatIndex[order[f]] = f;
        int decayed = Flat.Offset(parameters.Count(p => p.Decay));
        var ranges = new List<ParamRange>();
        if (decayed > 0) ranges.Add(Range(0, decayed, decays: true));
        if (Flat.Length > decayed) ranges.Add(Range(decayed, Flat.Length - decayed, decays: false));
        Ranges = ranges;
        _gradNormSq = Tensor.Zeros(Flat.Device, 1);
    }

    /// <summary>The parameters, in the order given.</summary>
    public IReadOnlyList<OptimParam> Params { get; }

    /// <summary>The parameters and gradients as two flat buffers, the decayed parameters first.</summary>
    private protected FlatParameters Flat { get; }

    /// <summary>The parameter tensors in the order of the flat buffers (what <see cref="WeightAverage"/> packs its copy in).</summary>
    internal IReadOnlyList<Tensor> PackedTensors => Flat.Tensors;

    /// <summary>Every parameter value, in <see cref="PackedTensors"/> order.</summary>
    internal DeviceBuffer PackedValues => Flat.Data;

    /// <summary>One stretch of the flat buffers with one weight-decay setting, sliced once (a step allocates nothing).</summary>
    private protected sealed record ParamRange(int Offset, int Length, bool Decays, DeviceBuffer Data, DeviceBuffer Grad);

    /// <summary>The decayed parameters, then the rest: one update launch each.</summary>
    private protected IReadOnlyList<ParamRange> Ranges { get; }

    /// <summary>Clip the global gradient norm to this value before the update; 0 or less disables clipping.</summary>
    public float MaxGradNorm { get; }

    /// <summary>Number of updates done so far.</summary>
    public int StepCount { get; protected set; }

    private protected IKernels K => Flat.Device.Kernels;

    /// <summary>Applies one update with learning rate <paramref name="lr"/> to every parameter.</summary>
    public void Step(float lr)
    {
        DeviceBuffer? normSq = null;
        if (MaxGradNorm > 0)
        {
            K.SumSquares(Flat.Grad, Flat.Length, _gradNormSq.Data, accumulate: false);
            normSq = _gradNormSq.Data;
        }
        StepCount++;
        Update(lr, normSq);
    }

    // ---- the form a CUDA graph can replay (Training/CapturedStep.cs) ---------------------------
    // Step(lr) hands lr and the step count to the update kernels as arguments, which a captured
    // graph would freeze at their capture values. Here the host writes them (folded exactly as the
    // kernels' arguments are) into a small device buffer before the step, outside the graph, and
    // the update kernels read them there. The device work and its order are Step's, so both forms
    // give the same bits.
    private DeviceBuffer? _stepScalars;      // ScalarsPerRange floats per entry of Ranges
    private DeviceBuffer[]? _stepScalarsRange;
    private float[]? _stepScalarsHost;

    /// <summary>Floats per range in the step-scalar buffer.</summary>
    private protected abstract int ScalarsPerRange { get; }

    /// <summary>Writes range <paramref name="range"/>'s step-dependent values for learning rate <paramref name="lr"/> at the current StepCount.</summary>
    private protected abstract void WriteStepScalars(int range, float lr, Span<float> destination);

    /// <summary>The update of <see cref="Update"/>, reading the values of <see cref="WriteStepScalars"/> from the device.</summary>
    private protected abstract void UpdateFromScalars(GpuKernels gpu, IReadOnlyList<DeviceBuffer> stepScalars, DeviceBuffer? gradNormSq);

    /// <summary>
    /// The host half of a step in the graph form: counts the step and uploads its learning rate and
    /// bias corrections to the device. Call it before <see cref="StepOnDevice"/>, outside a capture region.
    /// </summary>
    internal void PrepareDeviceStep(float lr)
    {
        if (K is not GpuKernels) throw new ViTScratchException($"the device-side optimizer step needs the ILGPU backend (cuda or ilgpu-cpu), not {K.Name}");
        if (_stepScalars is null)
        {
            _stepScalars = K.Allocate(Ranges.Count * ScalarsPerRange);
            _stepScalarsRange = Enumerable.Range(0, Ranges.Count).Select(r => K.Slice(_stepScalars, r * ScalarsPerRange, ScalarsPerRange)).ToArray();
            _stepScalarsHost = new float[Ranges.Count * ScalarsPerRange];
        }
        StepCount++;
        for (int r = 0; r < Ranges.Count; r++) WriteStepScalars(r, lr, _stepScalarsHost.AsSpan(r * ScalarsPerRange, ScalarsPerRange));
        K.Upload(_stepScalarsHost, _stepScalars);
    }

    /// <summary>
    /// The device half: the gradient norm and the update, as <see cref="Step"/> queues them, with
    /// every step-dependent value read from the buffer <see cref="PrepareDeviceStep"/> wrote.
    /// Queues kernels only (no allocation, no host transfer), so it can be captured.
    /// </summary>
    internal void StepOnDevice()
    {
        if (_stepScalarsRange is null) throw new InvalidOperationException("StepOnDevice before PrepareDeviceStep");
        DeviceBuffer? normSq = null;
        if (MaxGradNorm > 0)
        {
            K.SumSquares(Flat.Grad, Flat.Length, _gradNormSq.Data, accumulate: false);
            normSq = _gradNormSq.Data;
        }
        UpdateFromScalars((GpuKernels)K, _stepScalarsRange, normSq);
    }

    /// <summary>The squared global gradient norm of the last step (a host read; for logging only).</summary>
    public float LastGradNormSquared() => _gradNormSq.Item();

    /// <summary>Zeroes every parameter's gradient (one fill over the flat gradient buffer).</summary>
    public void ZeroGrad() => K.Fill(Flat.Grad, 0f, Flat.Length);

    /// <summary>One update of all parameters, one launch per entry of <see cref="Ranges"/>.</summary>
    private protected abstract void Update(float lr, DeviceBuffer? gradNormSq);

    /// <summary>A flat state buffer shaped like the parameters, and its per-parameter tensors in Params order (for checkpoints).</summary>
    private protected (DeviceBuffer Flat, Tensor[] PerParam) StateLikeParams()
    {
        var (flat, perTensor) = Flat.StateBuffers();
        return (flat, _flatIndex.Select(f => perTensor[f]).ToArray());
    }

    /// <summary>Slices of a flat state buffer (from <see cref="StateLikeParams"/>) matching <see cref="Ranges"/>.</summary>
    private protected DeviceBuffer[] SliceByRange(DeviceBuffer flat) => Ranges.Select(r => K.Slice(flat, r.Offset, r.Length)).ToArray();

    private ParamRange Range(int offset, int length, bool decays) =>
        new(offset, length, decays, K.Slice(Flat.Data, offset, length), K.Slice(Flat.Grad, offset, length));

    /// <summary>Named state tensors for checkpoints ("{kind}.{param}"), including the step count.</summary>
    public abstract IEnumerable<(string Name, Tensor Tensor)> StateTensors();

    /// <summary>Saves the state: name → (shape, values).</summary>
    public Dictionary<string, (int[] Shape, float[] Values)> SaveState()
    {
        var state = new Dictionary<string, (int[], float[])>();
        foreach (var (name, t) in StateTensors()) state[name] = (t.Shape, t.ToArray());
        state[StepKey] = ([1], [StepCount]);
        return state;
    }

    /// <summary>Name of the step count in <see cref="SaveState"/>: a [1] tensor holding the count as a float.</summary>
    public const string StepKey = "optimizer.step";

    /// <summary>
    /// Restores a state saved by <see cref="SaveState"/>: every tensor must be present with its
    /// shape and finite values (see also <see cref="CheckStateValues"/>), and the step count a whole
    /// number ≥ 0. Everything is checked before anything is copied, so a failed load changes
    /// nothing. <paramref name="source"/> names the file in error messages.
    /// </summary>
    public void LoadState(IReadOnlyDictionary<string, (int[] Shape, float[] Values)> state, string source = "checkpoint")
    {
        ViTScratchException Bad(string why) => new($"{source}: {why}");
        var plan = new List<(Tensor Tensor, float[] Values)>();
        foreach (var (name, t) in StateTensors())
        {
            if (!state.TryGetValue(name, out var entry))
                throw Bad($"has no optimizer state '{name}'; it was saved by another optimizer or model");
            if (!ShapeOf.Equal(entry.Shape, t.Shape) || entry.Values.Length != t.Length)
                throw Bad($"optimizer state '{name}' has shape {ShapeOf.Format(entry.Shape)} in the checkpoint but {ShapeOf.Format(t.Shape)} here");
            for (int i = 0; i < entry.Values.Length; i++)
                if (!float.IsFinite(entry.Values[i]))
                    throw Bad($"optimizer state '{name}' holds {entry.Values[i].ToString(CultureInfo.InvariantCulture)} at index {i}; the state is corrupt or comes from a run that diverged");
            string? why = CheckStateValues(name, entry.Values);
            if (why is not null) throw Bad($"optimizer state '{name}' {why}; the state is corrupt");
            plan.Add((t, entry.Values));
        }
        if (!state.TryGetValue(StepKey, out var s)) throw Bad($"has no '{StepKey}'");
        if (s.Values.Length != 1 || !(s.Values[0] >= 0 && s.Values[0] <= int.MaxValue) || s.Values[0] != MathF.Floor(s.Values[0]))
            throw Bad($"'{StepKey}' is not one whole number >= 0 (shape {ShapeOf.Format(s.Shape)}{(s.Values.Length > 0 ? $", first value {s.Values[0].ToString(CultureInfo.InvariantCulture)}" : "")})");
        foreach (var (t, values) in plan) t.CopyFrom(values);
        StepCount = (int)s.Values[0];
    }

    /// <summary>A reason why these saved values of state <paramref name="name"/> cannot be right, or null (all finite already).</summary>
    private protected virtual string? CheckStateValues(string name, float[] values) => null;
}
