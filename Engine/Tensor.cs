using ViTScratch.Kernels;

namespace ViTScratch.Engine;

/// <summary>
/// A float32 tensor: a contiguous row-major buffer on a <see cref="Device"/>, its shape, and,
/// when it takes part in autograd, its gradient and the closure that propagates it to its inputs.
/// The shape is the only view metadata: no strides, no offsets, so every kernel sees plain
/// contiguous memory and a reader can follow every index by hand.
///
/// Device memory: a tensor made inside a <see cref="TensorScope"/> (an op's result, an
/// <see cref="Input"/>) goes back to the device's pool when the scope ends. One made outside any
/// scope (<see cref="FromArray"/>, <see cref="Zeros"/>, an op's result with no scope open) owns its
/// memory until <see cref="Dispose"/>; dispose it (a <c>using</c>) or work inside a scope, since the
/// garbage collector knows nothing of device memory pressure and may free it much later.
/// </summary>
public sealed partial class Tensor : IDisposable
{
    private DeviceBuffer? _data;

    internal Tensor(Device device, int[] shape, DeviceBuffer data, bool pooled)
    {
        Device = device;
        Shape = shape;
        Length = ShapeOf.Count(shape);
        if (data.Length != Length) throw new ArgumentException($"buffer of {data.Length} floats for shape {ShapeOf.Format(shape)}");
        _data = data;
        Pooled = pooled;
    }

    /// <summary>The device that holds this tensor's values and runs its ops.</summary>
    public Device Device { get; }

    /// <summary>The dimensions, outermost first. Do not modify.</summary>
    public int[] Shape { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Number of elements.</summary>
    public int Length { get; }

    /// <summary>Whether gradients flow to (and are kept for) this tensor.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>
    /// The gradient buffer: the sum of every <see cref="Backward"/> since the last zeroing, or null.
    /// Internal on purpose: an optimizer may move a parameter's storage (see FlatParameters), so a
    /// raw buffer taken before would go stale; users go through <see cref="GradToArray"/> and <see cref="SetGrad"/>.
    /// </summary>
    internal DeviceBuffer? Grad { get; set; }

    /// <summary>The value buffer; internal for the same reason as <see cref="Grad"/>.</summary>
    internal DeviceBuffer Data => _data ?? throw new ObjectDisposedException(
        nameof(Tensor), $"this {ShapeOf.Format(Shape)} tensor belonged to a TensorScope that has ended; copy values out before the scope is disposed");

    /// <summary>A short name for error messages and debugging (the op that made it, or a parameter name).</summary>
    public string? Name { get; set; }

    /// <summary>True once an optimizer's FlatParameters holds this tensor's storage: a second one may not take it.</summary>
    internal bool Packed { get; private set; }

    /// <summary>True when the buffers came from the device pool and go back to it when the scope ends.</summary>
    internal bool Pooled { get; }

    /// <summary>The backend that holds this tensor's buffers and runs its ops (the device's kernels).</summary>
    internal IKernels Kernels => Device.Kernels;

    // ---- creation ----------------------------------------------------------------------------

    /// <summary>Uploads <paramref name="values"/> as a tensor of the given shape (not owned by any scope).</summary>
    public static Tensor FromArray(Device device, ReadOnlySpan<float> values, params int[] shape)
    {
        int n = ShapeOf.Count(shape);
        if (values.Length != n)
            throw new ViTScratchException($"FromArray: {values.Length} values do not fill shape {ShapeOf.Format(shape)} ({n} elements)");
        var buffer = device.Kernels.Allocate(n);
        device.Kernels.Upload(values, buffer);
        return new Tensor(device, (int[])shape.Clone(), buffer, pooled: false);
    }

    /// <summary>
    /// Uploads a batch of input data into a tensor owned by the current scope (its buffer comes
    /// from the device pool and goes back at the end of the step), so feeding a batch allocates
    /// nothing in steady state. Without a scope it is the same as <see cref="FromArray"/>.
    /// </summary>
    public static Tensor Input(Device device, ReadOnlySpan<float> values, params int[] shape)
    {
        int n = ShapeOf.Count(shape);
        if (values.Length != n)
            throw new ViTScratchException($"Input: {values.Length} values do not fill shape {ShapeOf.Format(shape)} ({n} elements)");
        var t = Empty(device, (int[])shape.Clone());
        device.Kernels.Upload(values, t.Data);
        return t;
    }

    /// <summary>A zero tensor (not owned by any scope), e.g. for parameters.</summary>
    public static Tensor Zeros(Device device, params int[] shape) =>
        new(device, (int[])shape.Clone(), device.Kernels.Allocate(ShapeOf.Count(shape)), pooled: false);

    /// <summary>An uninitialised result tensor for an op; owned by the current scope if there is one.</summary>
    internal static Tensor Empty(Device device, int[] shape)
    {
        var scope = TensorScope.Current;
        var t = new Tensor(device, shape, scope is null ? device.Kernels.Allocate(ShapeOf.Count(shape)) : device.Rent(ShapeOf.Count(shape)), scope is not null);
        scope?.Own(t);
        return t;
    }

    // ---- reading back ------------------------------------------------------------------------

    /// <summary>Copies the values to the host (waits for the device).</summary>
    public float[] ToArray()
    {
        var result = new float[Length];
        Kernels.Download(Data, result);
        return result;
    }

    /// <summary>Whether this tensor has a gradient (after a <see cref="Backward"/> that reached it, or <see cref="SetGrad"/>).</summary>
    public bool HasGrad => Grad is not null;

    /// <summary>Copies the gradient to the host (waits for the device); an error when there is none yet.</summary>
    public float[] GradToArray()
    {
        if (Grad is null) throw new InvalidOperationException($"tensor {Name ?? ShapeOf.Format(Shape)} has no gradient; call Backward first");
        var result = new float[Length];
        Kernels.Download(Grad, result);
        return result;
    }

    /// <summary>The single value of a one-element tensor (a host synchronisation).</summary>
    public float Item()
    {
        if (Length != 1) throw new ViTScratchException($"Item: tensor of shape {ShapeOf.Format(Shape)} has {Length} elements, not 1");
        Span<float> one = stackalloc float[1];
        Kernels.Download(Data, one);
        return one[0];
    }

    /// <summary>
    /// Replaces the gradient with <paramref name="values"/> (one per element, row-major), creating it
    /// when there is none: to clip, scale or inject gradients before an optimizer step.
    /// </summary>
    public void SetGrad(ReadOnlySpan<float> values)
    {
        if (values.Length != Length) throw new ViTScratchException($"SetGrad: {values.Length} values for a tensor of shape {ShapeOf.Format(Shape)}");
        Grad ??= Pooled ? Device.Rent(Length) : Kernels.Allocate(Length);
        Kernels.Upload(values, Grad);
    }

    /// <summary>Replaces the values with <paramref name="values"/> (one per element, row-major).</summary>
    public void CopyFrom(ReadOnlySpan<float> values)
    {
        if (values.Length != Length) throw new ViTScratchException($"CopyFrom: {values.Length} values for a tensor of shape {ShapeOf.Format(Shape)}");
        Kernels.Upload(values, Data);
    }

    /// <summary>Zeroes the gradient buffer if there is one.</summary>
    public void ZeroGrad()
    {
        if (Grad is not null) Kernels.Fill(Grad, 0f, Length);
    }

    // FlatParameters: this (non-pooled) tensor now lives in slices of shared buffers. The old
    // buffers are freed; no other tensor shares them (ops never alias a tensor's buffer).
    internal void MoveStorage(DeviceBuffer data, DeviceBuffer grad)
    {
        Packed = true;
        if (data.Length != Length || grad.Length != Length) throw new ArgumentException($"MoveStorage: buffers of {data.Length} and {grad.Length} floats for {Length} elements");
        var oldData = Data;
        var oldGrad = Grad;
        _data = data;
        Grad = grad;
        oldData.Dispose();
        oldGrad?.Dispose();
    }

    /// <summary>
    /// Frees this tensor's device memory now (a pooled one goes back to its scope's pool early); the
    /// tensor cannot be read afterwards. Disposing twice, or a tensor its scope already released, does nothing.
    /// </summary>
    public void Dispose()
    {
        if (_data is null) return;
        if (!Pooled)
        {
            // Slices (a parameter packed by an optimizer, optimizer state views) do not own memory;
            // their Dispose frees nothing and only this tensor lets go of them.
            _data.Dispose();
            Grad?.Dispose();
        }
        Release();
    }

    internal void Release()
    {
        if (_data is null) return;
        if (Pooled)
        {
            Device.Return(_data);
            if (Grad is not null) Device.Return(Grad);
        }
        _data = null;
        Grad = null;
        Parents = [];
        BackwardFn = null;
    }

    /// <summary>The shape, name and device, for messages.</summary>
    public override string ToString() => $"Tensor{ShapeOf.Format(Shape)}{(Name is null ? "" : " " + Name)} on {Device.Name}";
}

/// <summary>Shape arithmetic and formatting.</summary>
internal static class ShapeOf
{
    public static int Count(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ViTScratchException($"negative dimension in shape {Format(shape)}");
            n *= d;
        }
        if (n > int.MaxValue) throw new ViTScratchException($"shape {Format(shape)} has more than 2^31 elements");
        return (int)n;
    }

    public static string Format(ReadOnlySpan<int> shape)
    {
        var parts = new string[shape.Length];
        for (int i = 0; i < shape.Length; i++) parts[i] = shape[i].ToString();
        return "[" + string.Join(", ", parts) + "]";
    }

    public static bool Equal(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);
}
