using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>
/// Base of every layer, like torch.nn.Module: it owns parameters and child modules, registered by
/// name in construction order, which fixes the order of <see cref="NamedParameters"/> (own
/// parameters first, then each child's, as PyTorch's state_dict) and so the optimizer's state layout.
/// </summary>
public abstract class Module
{
    private readonly List<(string Name, Parameter Parameter)> _parameters = new();
    private readonly List<(string Name, Module Module)> _children = new();

    /// <summary>Training mode (dropout active) or evaluation mode (dropout is the identity).</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Registers a parameter of this module under <paramref name="name"/>.</summary>
    protected Parameter AddParameter(string name, Parameter parameter)
    {
        _parameters.Add((name, parameter));
        return parameter;
    }

    /// <summary>
    /// Registers a child under <paramref name="name"/>. Names may contain dots: PyTorch's
    /// Sequential and ModuleList name children by index, so "net.1" stands for item 1 of net.
    /// </summary>
    protected T AddChild<T>(string name, T child) where T : Module
    {
        _children.Add((name, child));
        return child;
    }

    /// <summary>The child modules, in registration order.</summary>
    public IEnumerable<(string Name, Module Module)> Children => _children;

    /// <summary>Every parameter with its dotted path below this module, in registration order.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters(string prefix = "")
    {
        foreach (var (name, p) in _parameters) yield return (prefix + name, p);
        foreach (var (name, child) in _children)
            foreach (var item in child.NamedParameters(prefix + name + "."))
                yield return item;
    }

    /// <summary>Every parameter, in <see cref="NamedParameters"/> order.</summary>
    public IReadOnlyList<Parameter> Parameters() => NamedParameters().Select(x => x.Parameter).ToList();

    /// <summary>Number of trainable scalars.</summary>
    public long ParameterCount => NamedParameters().Sum(x => (long)x.Parameter.Length);

    /// <summary>Sets every parameter's <see cref="Parameter.Name"/> (and its tensor's, for error messages) to its dotted path.</summary>
    public void AssignNames()
    {
        foreach (var (name, p) in NamedParameters())
        {
            p.Name = name;
            p.Value.Name = name;
        }
    }

    /// <summary>Sets training mode (or evaluation mode with false) on this module and every child.</summary>
    public void Train(bool on = true)
    {
        Training = on;
        foreach (var (_, child) in _children) child.Train(on);
    }

    /// <summary>Evaluation mode: dropout and patch dropout off.</summary>
    public void Eval() => Train(false);

    /// <summary>Zeroes the accumulated gradient of every parameter.</summary>
    public void ZeroGrad()
    {
        foreach (var (_, p) in NamedParameters()) p.Value.ZeroGrad();
    }
}
