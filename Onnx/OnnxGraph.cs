using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace ViTScratch.Onnx;

/// <summary>
/// Builds an ONNX graph one node at a time. Every node has one output whose value name is the
/// node's own name (made unique), so the graph reads like the model's module tree
/// ("transformer.layers.0.0/softmax"); constants are initializers, shared by name.
/// </summary>
/// <remarks>
/// The messages (ModelProto, NodeProto, TensorProto, ...) are the OnnxSharp package's: C# that
/// protoc generated from ONNX's own onnx.proto, serialised by Google.Protobuf. That is the
/// simplest honest route to the wire format: no schema written or copied here, no protoc step in
/// the build, and ONNX's field numbers exactly as the standard has them.
/// </remarks>
internal sealed class OnnxGraph
{
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public GraphProto Proto { get; } = new();

    /// <summary>A float32 graph input (or output) of the given dims; a string dim is symbolic (dynamic).</summary>
    public static ValueInfoProto Value(string name, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string symbol
                ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    public void Input(ValueInfoProto value)
    {
        Reserve(value.Name);
        Proto.Input.Add(value);
    }

    public void Output(ValueInfoProto value) => Proto.Output.Add(value);

    /// <summary>Adds node <paramref name="op"/> and returns the name of its output.</summary>
    public string Node(string op, string name, IEnumerable<string> inputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Unique(name) };
        node.Input.AddRange(inputs);
        node.Output.Add(node.Name);
        node.Attribute.AddRange(attributes);
        Proto.Node.Add(node);
        return node.Name;
    }

    /// <summary>Adds a node with several outputs, named "name/label" for each label, and returns their names.</summary>
    public string[] Node(string op, string name, IEnumerable<string> inputs, string[] outputLabels, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Unique(name) };
        node.Input.AddRange(inputs);
        var outputs = outputLabels.Select(label => Unique($"{node.Name}/{label}")).ToArray();
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        Proto.Node.Add(node);
        return outputs;
    }

    /// <summary>A float32 initializer with the given dims (row-major values).</summary>
    public string Floats(string name, IReadOnlyList<long> dims, ReadOnlySpan<float> values)
    {
        long count = dims.Aggregate(1L, (a, b) => a * b);
        if (count != values.Length)
            throw new ArgumentException($"initializer '{name}': {values.Length} values for dims [{string.Join(", ", dims)}]");
        var t = new TensorProto { Name = Unique(name), DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        // raw_data is little-endian by the ONNX spec; this engine only runs on little-endian hosts.
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX export needs a little-endian host");
        t.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values));
        Proto.Initializer.Add(t);
        return t.Name;
    }

    /// <summary>A float32 scalar (rank 0) constant, shared by everyone who asks for the same name.</summary>
    public string Scalar(string name, float value) =>
        _names.Contains(name) ? name : Floats(name, [], [value]);

    /// <summary>An int64 constant: a 1-D list (shapes, split sizes) or, with <paramref name="scalar"/>, one rank-0 value (an index).</summary>
    public string Int64s(string name, long[] values, bool scalar = false)
    {
        if (_names.Contains(name)) return name;
        var t = new TensorProto { Name = Unique(name), DataType = (int)TensorProto.Types.DataType.Int64 };
        if (!scalar) t.Dims.Add(values.Length);
        t.Int64Data.AddRange(values);
        Proto.Initializer.Add(t);
        return t.Name;
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    private void Reserve(string name)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"ONNX value name '{name}' is used twice");
    }

    // Value names must be unique in a graph (static single assignment); a repeated name gets a suffix.
    private string Unique(string name)
    {
        if (_names.Add(name)) return name;
        for (int i = 1; ; i++)
            if (_names.Add($"{name}_{i}")) return $"{name}_{i}";
    }
}
