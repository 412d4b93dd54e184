using ViTScratch.Engine;
using ViTScratch.Kernels;

namespace ViTScratch.Training.Optim;

/// <summary>A tensor the optimizer updates, its checkpoint name, and whether weight decay applies to it.</summary>
public sealed record OptimParam(string Name, Tensor Tensor, bool Decay);

/// <summary>
/// Base of SGD and AdamW: owns the per-parameter state tensors, the gradient-norm buffer used for
/// clipping by global norm, and checkpointing of that state. A step never reads anything back to
/// the host: the squared norm is accumulated on the device and each update kernel reads it there.
/// </summary>
public abstract class Optimizer
{
    private readonly Tensor _gradNormSq;

    protected Optimizer(IReadOnlyList<OptimParam> parameters, float maxGradNorm)
    {
        if (parameters.Count == 0) throw new ViTScratchException("optimizer: no parameters to optimise");
        Params = parameters;
        MaxGradNorm = maxGradNorm;
        _gradNormSq = Tensor.Zeros(parameters[0].Tensor.Device, 1);
    }

    public IReadOnlyList<OptimParam> Params { get; }

    /// <summary>Clip the global gradient norm to this value before the update; 0 or less disables clipping.</summary>
    public float MaxGradNorm { get; }

    /// <summary>Number of updates done so far.</summary>
    public int StepCount { get; protected set; }

    protected IKernels K => Params[0].Tensor.Device.Kernels;

    /// <summary>Applies one update with learning rate <paramref name="lr"/> to every parameter that has a gradient.</summary>
    public void Step(float lr)
    {
        DeviceBuffer? normSq = null;
        if (MaxGradNorm > 0)
        {
            bool first = true;
            foreach (var p in Params)
            {
                if (p.Tensor.Grad is null) continue;
                K.SumSquares(p.Tensor.Grad, p.Tensor.Length, _gradNormSq.Data, accumulate: !first);
                first = false;
            }
            normSq = _gradNormSq.Data;
        }
        StepCount++;
        for (int i = 0; i < Params.Count; i++)
            if (Params[i].Tensor.Grad is not null) Update(i, lr, normSq);
    }

    /// <summary>The squared global gradient norm of the last step (a host read; for logging only).</summary>
    public float LastGradNormSquared() => _gradNormSq.Item();

    public void ZeroGrad()
    {
        foreach (var p in Params) p.Tensor.ZeroGrad();
    }

    protected abstract void Update(int index, float lr, DeviceBuffer? gradNormSq);

    /// <summary>Named state tensors for checkpoints ("{kind}.{param}"), including the step count.</summary>
    public abstract IEnumerable<(string Name, Tensor Tensor)> StateTensors();

    /// <summary>Saves the state: name → (shape, values).</summary>
    public Dictionary<string, (int[] Shape, float[] Values)> SaveState()
    {
        var state = new Dictionary<string, (int[], float[])>();
        foreach (var (name, t) in StateTensors()) state[name] = (t.Shape, t.ToArray());
        state["optimizer.step"] = ([1], [StepCount]);
        return state;
    }

    /// <summary>Restores a state saved by <see cref="SaveState"/>; every tensor must be present with its shape.</summary>
    public void LoadState(IReadOnlyDictionary<string, (int[] Shape, float[] Values)> state)
    {
        foreach (var (name, t) in StateTensors())
        {
            if (!state.TryGetValue(name, out var entry))
                throw new ViTScratchException($"checkpoint has no optimizer state '{name}'; it was saved by another optimizer or model");
            if (!ShapeOf.Equal(entry.Shape, t.Shape))
                throw new ViTScratchException($"optimizer state '{name}' has shape {ShapeOf.Format(entry.Shape)} in the checkpoint but {ShapeOf.Format(t.Shape)} here");
            t.CopyFrom(entry.Values);
        }
        StepCount = state.TryGetValue("optimizer.step", out var s) ? (int)s.Values[0]
            : throw new ViTScratchException("checkpoint has no 'optimizer.step'");
    }

    protected static Tensor StateLike(Tensor p) => Tensor.Zeros(p.Device, p.Shape);
}
