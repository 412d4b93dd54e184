using System.Globalization;
using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Gpu;

namespace ViTScratch.Training.Optim;

/// <summary>
/// AdamW (Loshchilov and Hutter), PyTorch semantics: p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + eps) with
/// bias-corrected moments. Decay is decoupled from the gradient and applied only to parameters
/// flagged for it (not to biases, norms, the positional embedding or the cls token).
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly Tensor[] _m, _v;               // per-parameter views of the flat moments, for checkpoints
    private readonly DeviceBuffer[] _mRange, _vRange; // the same moments sliced like Ranges, for the update

    /// <summary>AdamW over <paramref name="parameters"/> (see <see cref="OptimParam.From"/>), moving their storage into its flat buffers; <paramref name="maxGradNorm"/> clips the global gradient norm (0 = off).</summary>
    public AdamW(IReadOnlyList<OptimParam> parameters, float weightDecay = 0.05f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float maxGradNorm = 0f) : base(parameters, maxGradNorm)
    {
        WeightDecay = weightDecay; Beta1 = beta1; Beta2 = beta2; Eps = eps;
        (var m, _m) = StateLikeParams();
        (var v, _v) = StateLikeParams();
        _mRange = SliceByRange(m);
        _vRange = SliceByRange(v);
    }

    /// <summary>Decoupled weight decay, for the parameters flagged for it.</summary>
    public float WeightDecay { get; }
    /// <summary>Decay of the first moment.</summary>
    public float Beta1 { get; }
    /// <summary>Decay of the second moment.</summary>
    public float Beta2 { get; }
    /// <summary>Added to √v̂ in the denominator.</summary>
    public float Eps { get; }

    private protected override void Update(float lr, DeviceBuffer? gradNormSq)
    {
        for (int r = 0; r < Ranges.Count; r++)
        {
            var range = Ranges[r];
            K.AdamWStep(range.Data, range.Grad, _mRange[r], _vRange[r], range.Length, Args(r, lr), gradNormSq, MaxGradNorm);
        }
    }

    private protected override int ScalarsPerRange => GpuKernels.AdamWStepScalarCount;

    private protected override void WriteStepScalars(int range, float lr, Span<float> destination) =>
        GpuKernels.AdamWStepScalars(Args(range, lr), destination);

    private protected override void UpdateFromScalars(GpuKernels gpu, IReadOnlyList<DeviceBuffer> stepScalars, DeviceBuffer? gradNormSq)
    {
        for (int r = 0; r < Ranges.Count; r++)
        {
            var range = Ranges[r];
            gpu.AdamWStep(range.Data, range.Grad, _mRange[r], _vRange[r], range.Length, Args(r, 0f), stepScalars[r], gradNormSq, MaxGradNorm);
        }
    }

    private AdamWArgs Args(int range, float lr) => new(lr, Beta1, Beta2, Eps, Ranges[range].Decays ? WeightDecay : 0f, StepCount);

    /// <summary>The second moment is a running mean of squares: a negative entry would make √v̂ NaN.</summary>
    private protected override string? CheckStateValues(string name, float[] values)
    {
        if (!name.StartsWith("adamw.v.", StringComparison.Ordinal)) return null;
        int i = Array.FindIndex(values, x => x < 0);
        return i < 0 ? null : $"holds {values[i].ToString(CultureInfo.InvariantCulture)} at index {i}, but a second moment cannot be negative";
    }

    /// <summary>The moments, "adamw.m.NAME" and "adamw.v.NAME" per parameter.</summary>
    public override IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        for (int i = 0; i < Params.Count; i++)
        {
            yield return ("adamw.m." + Params[i].Name, _m[i]);
            yield return ("adamw.v." + Params[i].Name, _v[i]);
        }
    }
}
