using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>How a parameter is filled when a model is created.</summary>
public enum ParameterInit
{
    /// <summary>Normal(0, 0.02²) redrawn outside ±2 std: Linear weights, pos_embedding, cls_token.</summary>
    TruncatedNormal,
    /// <summary>All zeros.</summary>
    Zeros,
    /// <summary>All ones.</summary>
    Ones,
}

/// <summary>
/// A trainable tensor of a <see cref="Module"/>: the values (with <c>RequiresGrad</c> set, so every
/// backward pass accumulates into <c>Value.Grad</c>), the stable dotted name it has in a PyTorch
/// state_dict (e.g. <c>transformer.layers.0.0.to_qkv.weight</c>), and what the optimizer needs to know.
/// </summary>
public sealed class Parameter
{
    /// <summary>A trainable tensor of <paramref name="shape"/>, initialised by <paramref name="init"/>; <paramref name="weightDecay"/> says whether AdamW decays it.</summary>
    public Parameter(Device device, int[] shape, ParameterInit init, bool weightDecay)
    {
        Value = Tensor.Zeros(device, shape);
        Value.RequiresGrad = true;
        Init = init;
        WeightDecay = weightDecay;
        Name = "";
    }

    /// <summary>The tensor the layers use; it requires gradients.</summary>
    public Tensor Value { get; }

    /// <summary>The full dotted name, assigned when the owning model is assembled (see <see cref="Module.AssignNames"/>).</summary>
    public string Name { get; internal set; }

    /// <summary>
    /// Whether AdamW's decoupled weight decay applies. Only matrices (Linear weights) decay; biases,
    /// LayerNorm gains/shifts, pos_embedding and cls_token do not, as is usual for ViTs: pulling
    /// them to zero fights their role (a LayerNorm gain of 0 switches the layer off).
    /// </summary>
    public bool WeightDecay { get; }

    /// <summary>How it was initialised.</summary>
    public ParameterInit Init { get; }

    /// <summary>The shape of <see cref="Value"/>.</summary>
    public int[] Shape => Value.Shape;

    /// <summary>Number of elements.</summary>
    public int Length => Value.Length;

    /// <summary>The name and shape.</summary>
    public override string ToString() => $"{Name} {ShapeOf.Format(Shape)}";
}
