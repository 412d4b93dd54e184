namespace ViTScratch.Engine;

/// <summary>
/// The lifetime of the intermediate tensors of one step. Every tensor an op creates while a scope
/// is open belongs to it; disposing the scope returns their buffers (values and gradients) to the
/// device pool and marks the tensors dead, so a later use fails loudly instead of reading
/// recycled memory. Parameters and tensors made by <see cref="Tensor.FromArray"/> are not owned.
/// Copy out what you keep (for example <c>loss.Item()</c>) before the scope ends.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? _current;
    // The list of the last disposed scope, reused by the next one: a step creates hundreds of
    // tensors, and growing a fresh list every step was a steady 2 KB of garbage.
    [ThreadStatic] private static List<Tensor>? _spare;

    private readonly List<Tensor> _owned;
    private readonly TensorScope? _outer;

    /// <summary>Opens a scope on this thread: tensors that ops make until it is disposed belong to it.</summary>
    public TensorScope()
    {
        _owned = _spare ?? new List<Tensor>();
        _spare = null;
        _outer = _current;
        _current = this;
    }

    internal static TensorScope? Current => _current;

    internal void Own(Tensor t) => _owned.Add(t);

    /// <summary>Ends the scope: its tensors go back to the device pool and cannot be read afterwards.</summary>
    public void Dispose()
    {
        if (_current != this) throw new InvalidOperationException("tensor scopes must be disposed in the reverse order of creation");
        _current = _outer;
        foreach (var t in _owned) t.Release();
        _owned.Clear();
        _spare = _owned;
    }
}
