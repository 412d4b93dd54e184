using System.Reflection;
using Google.Protobuf;
using Onnx;
using ViTScratch.Model;
using static ViTScratch.Onnx.OnnxGraph;
using Attention = ViTScratch.Model.Attention;
using LayerNorm = ViTScratch.Model.LayerNorm;
using Linear = ViTScratch.Model.Linear;

namespace ViTScratch.Onnx;

/// <summary>
/// Writes a <see cref="ViT"/> as a standard ONNX model (opset 17, ONNX's default domain only), so
/// that ONNX Runtime, or any other ONNX runtime, computes the same logits as <see cref="ViT.Forward"/>
/// in evaluation mode. Input "images" is float32 [batch, C, H, W], already normalised (see
/// <see cref="OnnxModelInfo"/>); output "logits" is float32 [batch, classes]; the batch dimension
/// is dynamic. Dropout and patch dropout are training-only and do not appear in the graph.
/// </summary>
/// <remarks>
/// The graph, op by op, as ViT.Forward computes it:
/// patches: Reshape [B, C, H/p, p, W/p, p] → Transpose → Reshape [B, N, p·p·C], vit-pytorch's
/// Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)'); LayerNormalization, Linear, LayerNormalization;
/// the cls token Expanded to the batch and Concatenated in front; + pos_embedding; per block
/// x += attention(LayerNormalization(x)), x += MLP(LayerNormalization(x)) with attention as
/// to_qkv → Split q | k | v → heads by Reshape/Transpose → Softmax(q kᵀ · d^-½) v → merge →
/// to_out, and the MLP's GELU in its exact form x · ½(1 + Erf(x / √2)); the final
/// LayerNormalization; pooling by Gather of token 0 (cls) or ReduceMean over tokens (mean); the
/// head as Gemm. With <see cref="OnnxModelInfo.TestTimeAugmentation"/> "flip", the images and
/// their mirror images (Slice with step −1 along x) are Concatenated into one batch of 2·B, and
/// the logits Reshaped to [2, B, classes] and ReduceMean-ed over the two views. A Linear on [B, N, D] is MatMul + Add with the weight stored transposed
/// ([in, out], named "&lt;state_dict name&gt;.T"); the other initializers keep vit-pytorch's
/// state_dict names and shapes.
/// </remarks>
public static class OnnxExporter
{
    /// <summary>The ONNX operator set the graph uses (LayerNormalization needs 17).</summary>
    public const int Opset = 17;

    /// <summary>ONNX IR version 8 is the one that introduced opset 17.</summary>
    public const int IrVersion = 8;

    /// <summary>Name of the graph's input, [batch, C, H, W].</summary>
    public const string InputName = "images";
    /// <summary>Name of the graph's output, [batch, classes].</summary>
    public const string OutputName = "logits";
    /// <summary>Name of the dynamic batch dimension.</summary>
    public const string BatchDim = "batch";

    // Protocol Buffers cannot serialise a message of 2 GiB or more; stay clear of it.
    private const long MaxBytes = int.MaxValue - (64L << 20);

    /// <summary>
    /// The ONNX model of <paramref name="model"/> with <paramref name="info"/> and the model config
    /// (image_size, patch_size, pool, ...) in its metadata_props. Reads the weights; does not run
    /// or change the model.
    /// </summary>
    public static ModelProto Export(ViT model, OnnxModelInfo info)
    {
        var c = model.Config;
        Check(c, info);
        var g = new OnnxGraph();
        g.Input(Value(InputName, BatchDim, c.Channels, c.ImageSize, c.ImageSize));
        bool flip = info.TestTimeAugmentation == "flip";
        var images = flip ? BothViews(g) : InputName;                                             // [V·B, C, H, W], V views

        var x = Embed(g, model, images);
        for (int i = 0; i < c.Depth; i++)
            x = Block(g, model.Transformer.Layers[i], $"transformer.layers.{i}", x);
        x = Norm(g, model.Transformer.Norm, "transformer.norm", x);
        var pooled = c.Pool == Pooling.Mean
            ? g.Node("ReduceMean", "pool_mean", [x], Ints("axes", 1), Int("keepdims", 0))                            // [B, D]
            : g.Node("Gather", "pool_cls", [x, g.Int64s("const/token_0", [0], scalar: true)], Int("axis", 1)); // [B, D]
        var head = model.Head;
        var logits = g.Node("Gemm", flip ? "tta/logits_of_views" : OutputName, [pooled, Weight(g, head.Weight), Weight(g, head.Bias!)], Int("transB", 1));
        if (flip)
        {
            var byView = g.Node("Reshape", "tta/by_view", [logits, g.Int64s("const/views", [2, -1, c.NumClasses])]); // [2, B, classes]
            logits = g.Node("ReduceMean", OutputName, [byView], Ints("axes", 0), Int("keepdims", 0));                   // [B, classes]
        }
        if (logits != OutputName) throw new InvalidOperationException("the logits value was renamed");
        g.Output(Value(OutputName, BatchDim, c.NumClasses));

        g.Proto.Name = "vit";
        var proto = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "ViTScratch",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "",
            DocString = $"Vision Transformer (vit-pytorch layout): {InputName} [batch, {c.Channels}, {c.ImageSize}, {c.ImageSize}] normalised as metadata " +
                        $"'{OnnxModelInfo.NormalizationKey}' says -> {OutputName} [batch, {c.NumClasses}] in the order of metadata '{OnnxModelInfo.ClassNamesKey}'" +
                        (flip ? "; each image's logits are the mean of its own and its mirror image's (metadata 'test_time_augmentation')" : ""),
            Graph = g.Proto,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        var metadata = c.ToMetadata();
        foreach (var (key, value) in info.ToMetadata()) metadata.Add(key, value);
        foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            proto.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return proto;
    }

    /// <summary>Serialises <paramref name="proto"/> (an ONNX file's bytes) to <paramref name="stream"/>.</summary>
    public static void Write(ModelProto proto, Stream stream) => proto.WriteTo(stream);

    private static void Check(ViTConfig c, OnnxModelInfo info)
    {
        if (c.ParameterCount * sizeof(float) > MaxBytes)
            throw new ViTScratchException($"the model has {c.ParameterCount:N0} parameters, too many for one ONNX file (Protocol Buffers stop at 2 GiB)");
        if (info.ClassNames.Count != c.NumClasses)
            throw new ViTScratchException($"ONNX export: {info.ClassNames.Count} class names for a model with {c.NumClasses} classes");
        if (info.Mean.Count != c.Channels || info.Std.Count != c.Channels)
            throw new ViTScratchException($"ONNX export: normalisation has {info.Mean.Count} means and {info.Std.Count} stds for a {c.Channels}-channel model");
        if (info.Mean.Any(m => !float.IsFinite(m)) || info.Std.Any(s => !float.IsFinite(s) || s <= 0))
            throw new ViTScratchException("ONNX export: the normalisation mean must be finite and the std finite and positive");
        if (!OnnxModelInfo.TestTimeAugmentations.Contains(info.TestTimeAugmentation))
            throw new ViTScratchException($"ONNX export: test-time augmentation '{info.TestTimeAugmentation}' is not none or flip");
    }

    // images [B, C, H, W] → [2B, C, H, W]: the images, then their mirror images (x reversed).
    private static string BothViews(OnnxGraph g)
    {
        var mirror = g.Node("Slice", "tta/mirror", [InputName, g.Int64s("const/last", [-1]), g.Int64s("const/before_first", [long.MinValue]),
            g.Int64s("const/axis_x", [3]), g.Int64s("const/step_back", [-1])]);
        return g.Node("Concat", "tta/views", [InputName, mirror], Int("axis", 0));
    }

    // images [B, C, H, W] → tokens [B, N + 1, D]: patches, their embedding, cls token, positions.
    private static string Embed(OnnxGraph g, ViT m, string images)
    {
        var c = m.Config;
        int p = c.PatchSize, gh = c.ImageSize / p;
        // Reshape's 0 copies the input's size on that axis: here and below, the dynamic batch.
        var x = g.Node("Reshape", "patches/split", [images, g.Int64s("const/patch_grid", [0, c.Channels, gh, p, gh, p])]);
        x = g.Node("Transpose", "patches/order", [x], Ints("perm", 0, 2, 4, 3, 5, 1));   // [B, h, w, p1, p2, C]
        x = g.Node("Reshape", "patches", [x, g.Int64s("const/patch_tokens", [0, c.NumPatches, c.PatchDim])]); // [B, N, p·p·C]
        x = Norm(g, m.PatchNorm, "to_patch_embedding.1", x);
        x = Dense(g, m.PatchLinear, "to_patch_embedding.2", x);                         // [B, N, D]
        x = Norm(g, m.EmbeddingNorm, "to_patch_embedding.3", x);

        var batch = g.Node("Shape", "batch_size", [images], Int("start", 0), Int("end", 1));   // [1]: B
        var clsShape = g.Node("Concat", "cls_shape", [batch, g.Int64s("const/cls_rest", [1, c.Dim])], Int("axis", 0));
        var cls = g.Node("Expand", "cls_tokens", [Weight(g, m.ClsToken), clsShape]);              // [B, 1, D]
        x = g.Node("Concat", "tokens", [cls, x], Int("axis", 1));                                 // [B, N + 1, D]
        return g.Node("Add", "tokens/pos", [x, Weight(g, m.PosEmbedding)]);                       // + [1, N + 1, D]
    }

    private static string Block(OnnxGraph g, TransformerBlock block, string name, string x)
    {
        x = g.Node("Add", $"{name}.0/residual", [SelfAttention(g, block.Attention, $"{name}.0", x), x]);
        var ff = block.FeedForward;
        var h = Norm(g, ff.Norm, $"{name}.1.net.0", x);
        h = Dense(g, ff.Up, $"{name}.1.net.1", h);
        h = Gelu(g, $"{name}.1.net.2", h);
        h = Dense(g, ff.Down, $"{name}.1.net.4", h);
        return g.Node("Add", $"{name}.1/residual", [h, x]);
    }

    // x [B, T, D] → [B, T, D], before the residual.
    private static string SelfAttention(OnnxGraph g, Attention a, string name, string x)
    {
        int heads = a.Heads, d = a.DimHead, inner = heads * d;
        x = Norm(g, a.Norm, $"{name}.norm", x);
        var qkv = Dense(g, a.ToQkv, $"{name}.to_qkv", x);                                           // [B, T, 3·H·d]
        var qkvSplit = g.Node("Split", $"{name}/split", [qkv, g.Int64s($"const/split_{inner}", [inner, inner, inner])], ["q", "k", "v"],
            Int("axis", 2));                                                                          // 3 × [B, T, H·d]

        var headShape = g.Int64s($"const/heads_{heads}x{d}", [0, 0, heads, d]);
        string Heads(string v, string label, params long[] perm) =>
            g.Node("Transpose", $"{name}/{label}_heads", [g.Node("Reshape", $"{name}/{label}_split", [v, headShape])], Ints("perm", perm));
        var q = Heads(qkvSplit[0], "q", 0, 2, 1, 3);                                                 // [B, H, T, d]
        var kT = Heads(qkvSplit[1], "k", 0, 2, 3, 1);                                                // [B, H, d, T]
        var v = Heads(qkvSplit[2], "v", 0, 2, 1, 3);                                                 // [B, H, T, d]
        var scores = g.Node("MatMul", $"{name}/scores", [q, kT]);                                    // [B, H, T, T]
        scores = g.Node("Mul", $"{name}/scaled", [scores, g.Scalar($"const/scale_{d}", a.Scale)]);
        var weights = g.Node("Softmax", $"{name}/softmax", [scores], Int("axis", -1));
        var o = g.Node("MatMul", $"{name}/attend", [weights, v]);                                    // [B, H, T, d]
        o = g.Node("Transpose", $"{name}/merge_order", [o], Ints("perm", 0, 2, 1, 3));              // [B, T, H, d]
        o = g.Node("Reshape", $"{name}/merge", [o, g.Int64s($"const/merge_{inner}", [0, 0, inner])]); // [B, T, H·d]
        return a.ToOut is null ? o : Dense(g, a.ToOut, $"{name}.to_out.0", o);
    }

    private static string Norm(OnnxGraph g, LayerNorm ln, string name, string x) =>
        g.Node("LayerNormalization", name, [x, Weight(g, ln.Weight), Weight(g, ln.Bias)], Int("axis", -1), Float("epsilon", LayerNorm.Eps));

    // torch.nn.Linear on [..., in]: MatMul with the weight transposed to [in, out], then + bias.
    private static string Dense(OnnxGraph g, Linear lin, string name, string x)
    {
        var w = lin.Weight.Value.ToArray();                       // [out, in]
        int outF = lin.OutFeatures, inF = lin.InFeatures;
        var t = new float[w.Length];
        for (int o = 0; o < outF; o++)
            for (int i = 0; i < inF; i++)
                t[i * outF + o] = w[o * inF + i];
        var y = g.Node("MatMul", $"{name}/matmul", [x, g.Floats(lin.Weight.Name + ".T", [inF, outF], t)]);
        return lin.Bias is null ? y : g.Node("Add", name, [y, Weight(g, lin.Bias)]);
    }

    // The exact (erf) GELU the engine computes: x · ½ (1 + erf(x / √2)).
    private static string Gelu(OnnxGraph g, string name, string x)
    {
        var t = g.Node("Mul", $"{name}/scaled", [x, g.Scalar("const/inv_sqrt2", 0.70710678118654752f)]);
        var e = g.Node("Erf", $"{name}/erf", [t]);
        var s = g.Node("Add", $"{name}/one_plus", [e, g.Scalar("const/one", 1f)]);
        var y = g.Node("Mul", $"{name}/times_x", [x, s]);
        return g.Node("Mul", name, [y, g.Scalar("const/half", 0.5f)]);
    }

    private static string Weight(OnnxGraph g, Parameter p) =>
        g.Floats(p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Value.ToArray());
}
