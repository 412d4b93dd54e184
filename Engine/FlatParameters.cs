using ViTScratch.Kernels;

namespace ViTScratch.Engine;

/// <summary>
/// Parameter tensors moved into one contiguous buffer, and their gradients into a second one,
/// so that an optimizer step is a few launches over whole ranges instead of several launches per
/// parameter. Why: vit-tiny has 78 parameter tensors; on the H100 the per-parameter gradient-norm
/// sums and AdamW steps were 156 tiny launches, 13% of a training step (docs/log/2026-performance-log.md).
///
/// Each tensor keeps its shape and name; its Data and Grad become slices of the two buffers, in
/// the order given, and everything that reads or writes it (layers, checkpoints, Backward, which
/// accumulates into an existing leaf gradient) goes through those slices. The values and any
/// existing gradient are copied over, and the tensor's old buffers are freed.
/// </summary>
internal sealed class FlatParameters
{
    private readonly int[] _offsets;

    public FlatParameters(IReadOnlyList<Tensor> tensors)
    {
        if (tensors.Count == 0) throw new ViTScratchException("FlatParameters: no tensors");
        Device = tensors[0].Device;
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        _offsets = new int[tensors.Count + 1];
        long total = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            if (t.Device != Device) throw new ViTScratchException($"FlatParameters: {t} is not on {Device.Name} like the first tensor");
            if (t.Pooled) throw new ViTScratchException($"FlatParameters: {t} belongs to a TensorScope; parameters must outlive every scope");
            if (!seen.Add(t)) throw new ViTScratchException($"FlatParameters: {t} is listed twice");
            // A second packing would leave the first optimizer updating buffers the tensor no longer uses.
            if (t.Packed) throw new ViTScratchException($"{t} already belongs to an optimizer; one optimizer per parameter (make a new model for a second one)");
            _offsets[i] = (int)total;
            total += t.Length;
            if (total > int.MaxValue) throw new ViTScratchException("FlatParameters: more than 2^31 parameters");
        }
        Length = (int)total;
        _offsets[^1] = Length;
        var k = Device.Kernels;
        Data = k.Allocate(Length);   // zero-filled
        Grad = k.Allocate(Length);
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            var data = k.Slice(Data, _offsets[i], t.Length);
            var grad = k.Slice(Grad, _offsets[i], t.Length);
            k.Scale(t.Data, data, t.Length, 1f, accumulate: false);                 // an exact copy
            if (t.Grad is not null) k.Scale(t.Grad, grad, t.Length, 1f, accumulate: false);
            t.MoveStorage(data, grad);
        }
        Tensors = tensors.ToArray();
    }

    public Device Device { get; }

    /// <summary>The packed tensors, in buffer order.</summary>
    public IReadOnlyList<Tensor> Tensors { get; }

    /// <summary>Total number of floats.</summary>
    public int Length { get; }

    /// <summary>Every parameter value, tensor after tensor.</summary>
    public DeviceBuffer Data { get; }

    /// <summary>Every gradient, at the same offsets as <see cref="Data"/>.</summary>
    public DeviceBuffer Grad { get; }

    /// <summary>Where tensor <paramref name="index"/> starts in the buffers; Offset(Count) is the total.</summary>
    public int Offset(int index) => _offsets[index];

    /// <summary>
    /// Optimizer state shaped like the parameters: one zero buffer of <see cref="Length"/> floats
    /// (for the update kernels) and one tensor per parameter over its slice (for checkpoints).
    /// </summary>
    public (DeviceBuffer Flat, Tensor[] PerTensor) StateBuffers()
    {
        var k = Device.Kernels;
        var flat = k.Allocate(Length);
        var views = new Tensor[Tensors.Count];
        for (int i = 0; i < views.Length; i++)
            views[i] = new Tensor(Device, (int[])Tensors[i].Shape.Clone(), k.Slice(flat, _offsets[i], Tensors[i].Length), pooled: false);
        return (flat, views);
    }
}
