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
    public static ViT Load(string path, Device device)
    {
        var file = SafeTensors.Read(path);
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
            throw new ViTScratchException($"checkpoint '{path}': metadata '{SeedKey}' = '{s}' is not an integer");
        var vit = new ViT(config, device, seed);
        vit.LoadStateDict(file.Tensors, path);
        return vit;
    }

    /// <summary>Loads weights saved from a model with the same names and shapes (the file's config is not consulted).</summary>
    public void LoadWeights(string path) => LoadStateDict(SafeTensors.Read(path).Tensors, path);

    /// <summary>
    /// Copies <paramref name="tensors"/> into the parameters after checking that the names and shapes
    /// are exactly the model's: nothing is copied unless everything matches, so a failed load leaves
    /// the model as it was.
    /// </summary>
    public void LoadStateDict(IReadOnlyList<SafeTensor> tensors, string source = "state dict")
    {
        var byName = new Dictionary<string, SafeTensor>();
        foreach (var t in tensors)
            if (!byName.TryAdd(t.Name, t)) throw new ViTScratchException($"{source}: tensor '{t.Name}' appears twice");

        var plan = new List<(Parameter Parameter, SafeTensor Tensor)>();
        foreach (var (name, p) in NamedParameters())
        {
            if (!byName.TryGetValue(name, out var t))
                throw new ViTScratchException($"{source}: has no tensor '{name}' {ShapeOf.Format(p.Shape)}, which this model needs; it was saved from a different architecture");
            if (!ShapeOf.Equal(t.Shape, p.Shape))
                throw new ViTScratchException($"{source}: tensor '{name}' has shape {ShapeOf.Format(t.Shape)} but the model's is {ShapeOf.Format(p.Shape)}; it was saved from a model with a different config");
            if (t.Data.Length != p.Length)
                throw new ViTScratchException($"{source}: tensor '{name}' has {t.Data.Length} values for shape {ShapeOf.Format(p.Shape)}");
            plan.Add((p, t));
        }
        if (byName.Count != plan.Count)
        {
            var known = NamedParameters().Select(x => x.Name).ToHashSet();
            var extra = tensors.First(t => !known.Contains(t.Name));
            throw new ViTScratchException($"{source}: has tensor '{extra.Name}' {ShapeOf.Format(extra.Shape)}, which this model does not have; it was saved from a different architecture");
        }
        foreach (var (p, t) in plan) p.Value.CopyFrom(t.Data);
    }
}
