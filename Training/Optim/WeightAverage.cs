using ViTScratch.Engine;
using ViTScratch.Model;

namespace ViTScratch.Training.Optim;

/// <summary>
/// An exponential moving average of a model's weights (`--ema DECAY`; Polyak averaging in its
/// exponential form, timm's "model EMA"), kept in a second model of the same shape:
///
///     after every optimizer step:  average ← decay · average + (1 − decay) · weights
///
/// so the average spans about 1/(1 − decay) steps (0.998: 500 steps). Late in a schedule the
/// weights jitter around a minimum with the noise of each batch; their average sits nearer its
/// centre, and it is what validation, best.safetensors and the test judge. Training never reads
/// it: the optimizer steps the weights themselves, bit for bit as without an average.
///
/// The average starts as an exact copy of the weights at its first step (<see cref="Update"/> with
/// start), so it never mixes in the second model's initial values. Where the weights change most
/// at the start of the averaged stretch, an average of few steps is close to the weights anyway.
///
/// Cost: the average's parameters are packed into one flat buffer in the optimizer's order, so an
/// update is two elementwise passes over all parameters (scale by decay, then add (1 − decay) ·
/// weights), whatever the number of parameter tensors: for vit-micro's 0.54 M parameters five
/// streams of 2.2 MB (read and write, then two reads and a write), against a CPU training step of
/// about 160 ms. It needs one more copy of the parameters (and, from the packing, of their
/// gradients, which stay zero).
/// </summary>
public sealed class WeightAverage
{
    private readonly Optimizer _optimizer;
    private readonly FlatParameters _average;

    /// <summary>
    /// An average of the parameters <paramref name="optimizer"/> steps, kept in <paramref name="average"/>:
    /// a model of the same configuration, whose parameters this takes over (their values are
    /// replaced at the first <see cref="Update"/>). Each of the optimizer's parameters is matched by
    /// name to one of <paramref name="average"/>'s.
    /// </summary>
    public WeightAverage(ViT average, Optimizer optimizer, float decay)
    {
        if (!(decay > 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "the decay of a weight average lies strictly between 0 and 1");
        _optimizer = optimizer;
        var names = new Dictionary<Tensor, string>(ReferenceEqualityComparer.Instance);
        foreach (var p in optimizer.Params) names.Add(p.Tensor, p.Name);
        var byName = average.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.Value);
        var packed = new List<Tensor>();
        foreach (var live in optimizer.PackedTensors)
        {
            string name = names[live];
            if (!byName.TryGetValue(name, out var copy) || !ShapeOf.Equal(copy.Shape, live.Shape))
                throw new ViTScratchException($"weight average: the averaging model has no parameter '{name}' of shape {ShapeOf.Format(live.Shape)}; it must be the trained model's configuration");
            packed.Add(copy);
        }
        if (packed.Count != byName.Count)
            throw new ViTScratchException($"weight average: the averaging model has {byName.Count} parameters and the optimizer steps {packed.Count}; it must be the trained model's configuration");
        _average = new FlatParameters(packed);
        Model = average;
        Decay = decay;
    }

    /// <summary>The model holding the average: evaluate it (in eval mode) to judge the averaged weights.</summary>
    public ViT Model { get; }

    /// <summary>The weight the average keeps at each step; the weights enter with 1 − decay.</summary>
    public float Decay { get; }

    /// <summary>
    /// One step of the average, after an optimizer step. With <paramref name="start"/> the average
    /// becomes an exact copy of the weights (the first averaged step of a run).
    /// </summary>
    public void Update(bool start)
    {
        var k = _average.Device.Kernels;
        int n = _average.Length;
        if (start)
        {
            k.Scale(_optimizer.PackedValues, _average.Data, n, 1f, accumulate: false);
            return;
        }
        k.Scale(_average.Data, _average.Data, n, Decay, accumulate: false);                 // average ← decay · average
        k.Scale(_optimizer.PackedValues, _average.Data, n, 1f - Decay, accumulate: true);   //         + (1 − decay) · weights
    }
}
