using System.Globalization;
using ViTScratch.Engine;
using ViTScratch.Model.Checkpoints;

namespace ViTScratch.Model;

// Saving and loading a ViT as safetensors: the tensors under their vit-pytorch state_dict names,
// the config (and the model seed) in __metadata__.
public sealed partial class ViT
{
    /// <summary>Metadata key of the seed the model was created with (it also seeds dropout).</summary>
    public const string SeedKey = "model_seed";

    /// <summary>Every parameter's current values under its dotted name, in registration order.</summary>
    public List<SafeTensor> StateDict() =>
        NamedParameters().Select(x => new SafeTensor(x.Name, (int[])x.Parameter.Shape.Clone(), x.Parameter.Value.ToArray())).ToList();

    /// <summary>
    /// Writes the weights and config to <paramref name="path"/> (atomically). <paramref name="extraMetadata"/>
    /// is stored alongside the config keys, which it must not redefine.
    /// </summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var metadata = Config.ToMetadata();
        metadata[SeedKey] = Seed.ToString(CultureInfo.InvariantCulture);
        foreach (var (key, value) in extraMetadata ?? new Dictionary<string, string>())
            if (!metadata.TryAdd(key, value))
                throw new ViTScratchException($"extra checkpoint metadata key '{key}' is reserved for the model config; use another name");
        SafeTensors.Write(path, StateDict(), metadata);
    }

    /// <summary>Builds the model described by the file's metadata and loads its weights.</summary>
    public static ViT Load(string path, Device device) => Load(SafeTensors.Read(path), path, device);

    /// <summary>
    /// Builds the model described by <paramref name="file"/>'s metadata and loads its weights. The
    /// config is checked against the file's own tensors before the model is built, so a file whose
    /// metadata claims a larger model than it stores fails with one line instead of allocating that
    /// model. Tensors whose names start with <paramref name="ignorePrefix"/> (a training
    /// checkpoint's optimizer state) are not part of the model.
    /// </summary>
    public static ViT Load(SafeTensorsFile file, string path, Device device, string? ignorePrefix = null)
    {
        var tensors = ignorePrefix is null ? file.Tensors
            : file.Tensors.Where(t => !t.Name.StartsWith(ignorePrefix, StringComparison.Ordinal)).ToList();
        ViTConfig config;
        try
        {
            config = ViTConfig.FromMetadata(file.Metadata);
        }
        catch (ViTScratchException e)
        {
            throw new ViTScratchException($"checkpoint '{path}': {e.Message}", e);
        }
        int seed = 0;
        if (file.Metadata.TryGetValue(SeedKey, out var s) && !int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out seed))
            throw new ViTScratchException($"checkpoint '{path}': metadata '{SeedKey}' = '{ViTScratchException.Printable(s)}' is not an integer");
        CheckConfigAgainstTensors(config, tensors, path);
        var vit = new ViT(config, device, seed);
        vit.LoadStateDict(tensors, path);
        return vit;
    }

    /// <summary>
    /// The tensors that fix each config field must have the shapes the config implies, the file
    /// must store exactly <c>depth</c> transformer layers, and the config's parameter count must not
    /// exceed the values stored. After this, building the model allocates no more than the file
    /// holds; <see cref="LoadStateDict"/> then checks every name and shape.
    /// </summary>
    private static void CheckConfigAgainstTensors(ViTConfig c, IReadOnlyList<SafeTensor> tensors, string path)
    {
        var byName = new Dictionary<string, SafeTensor>();
        var layers = new HashSet<int>();
        long stored = 0;
        foreach (var t in tensors)
        {
            byName.TryAdd(t.Name, t);
            stored += t.Data.Length;
            const string LayerPrefix = "transformer.layers.";
            if (t.Name.StartsWith(LayerPrefix, StringComparison.Ordinal))
            {
                int dot = t.Name.IndexOf('.', LayerPrefix.Length);
                if (dot > 0 && int.TryParse(t.Name.AsSpan(LayerPrefix.Length, dot - LayerPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int layer))
                    layers.Add(layer);
            }
        }
        if (layers.Count != c.Depth)
            throw new ViTScratchException($"checkpoint '{path}': metadata says depth = {c.Depth} but the file stores {layers.Count} transformer layers; " +
                "its metadata does not match its weights (the file is corrupt or was edited)");

        void Expect(string name, int[] shape, string fields)
        {
            if (!byName.TryGetValue(name, out var t))
                throw new ViTScratchException($"checkpoint '{path}': has no tensor '{name}', which every ViT needs; it is not a ViT checkpoint or it is corrupt");
            if (!ShapeOf.Equal(t.Shape, shape))
                throw new ViTScratchException($"checkpoint '{path}': metadata says {fields}, so tensor '{name}' should be {ShapeOf.Format(shape)}, but the file " +
                    $"stores {ShapeOf.Format(t.Shape)}; its metadata does not match its weights (the file is corrupt or was edited)");
        }
        Expect("cls_token", [1, 1, c.Dim], $"dim = {c.Dim}");
        Expect("pos_embedding", [1, c.NumPatches + 1, c.Dim], $"image_size = {c.ImageSize}, patch_size = {c.PatchSize}, dim = {c.Dim}");
        Expect("to_patch_embedding.2.weight", [c.Dim, c.PatchDim], $"patch_size = {c.PatchSize}, channels = {c.Channels}, dim = {c.Dim}");
        Expect("transformer.layers.0.0.to_qkv.weight", [3 * c.InnerDim, c.Dim], $"heads = {c.Heads}, dim_head = {c.DimHead}, dim = {c.Dim}");
        Expect("transformer.layers.0.1.net.1.weight", [c.MlpDim, c.Dim], $"mlp_dim = {c.MlpDim}, dim = {c.Dim}");
        Expect("mlp_head.weight", [c.NumClasses, c.Dim], $"num_classes = {c.NumClasses}, dim = {c.Dim}");
        if (c.ParameterCount > stored)
            throw new ViTScratchException($"checkpoint '{path}': its metadata describes a model of {c.ParameterCount} parameters but the file stores {stored} values; " +
                "its metadata does not match its weights (the file is corrupt or was edited)");
    }

    /// <summary>Loads weights saved from a model with the same names and shapes (the file's config is not consulted).</summary>
    public void LoadWeights(string path) => LoadStateDict(SafeTensors.Read(path).Tensors, path);

    /// <summary>
    /// Copies <paramref name="tensors"/> into the parameters after checking that the names and shapes
    /// are exactly the model's and every value is finite: nothing is copied unless everything
    /// matches, so a failed load leaves the model as it was.
    /// </summary>
    public void LoadStateDict(IReadOnlyList<SafeTensor> tensors, string source = "state dict")
    {
        var byName = new Dictionary<string, SafeTensor>();
        foreach (var t in tensors)
            if (!byName.TryAdd(t.Name, t)) throw new ViTScratchException($"{source}: tensor '{ViTScratchException.Printable(t.Name)}' appears twice");

        var plan = new List<(Parameter Parameter, SafeTensor Tensor)>();
        foreach (var (name, p) in NamedParameters())
        {
            if (!byName.TryGetValue(name, out var t))
                throw new ViTScratchException($"{source}: has no tensor '{name}' {ShapeOf.Format(p.Shape)}, which this model needs; it was saved from a different architecture");
            if (!ShapeOf.Equal(t.Shape, p.Shape))
                throw new ViTScratchException($"{source}: tensor '{name}' has shape {ShapeOf.Format(t.Shape)} but the model's is {ShapeOf.Format(p.Shape)}; it was saved from a model with a different config");
            if (t.Data.Length != p.Length)
                throw new ViTScratchException($"{source}: tensor '{name}' has {t.Data.Length} values for shape {ShapeOf.Format(p.Shape)}");
            int bad = IndexOfNonFinite(t.Data);
            if (bad >= 0)
                throw new ViTScratchException($"{source}: tensor '{name}' holds {t.Data[bad].ToString(CultureInfo.InvariantCulture)} at index {bad}; the weights are corrupt or come from " +
                    "a run that diverged. Use an earlier checkpoint (or retrain with a lower --lr)");
            plan.Add((p, t));
        }
        if (byName.Count != plan.Count)
        {
            var known = NamedParameters().Select(x => x.Name).ToHashSet();
            var extra = tensors.First(t => !known.Contains(t.Name));
            throw new ViTScratchException($"{source}: has tensor '{ViTScratchException.Printable(extra.Name)}' {ShapeOf.Format(extra.Shape)}, which this model does not have; it was saved from a different architecture");
        }
        foreach (var (p, t) in plan) p.Value.CopyFrom(t.Data);
    }

    /// <summary>The index of the first NaN or infinity in <paramref name="values"/>, or -1.</summary>
    private static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return -1;
    }
}
