using System.Globalization;
using System.Text;

namespace ViTScratch.Model;

/// <summary>A named model size; combined with an input shape and class count it becomes a <see cref="ViTConfig"/>.</summary>
public sealed record ViTPreset(string Name, int Dim, int Depth, int Heads, int DimHead, int MlpDim, int PatchSize = 4)
{
    /// <summary>The config for images [channels, height, width] (square, divisible by the patch) and <paramref name="numClasses"/> classes.</summary>
    public ViTConfig ToConfig(int channels, int height, int width, int numClasses,
        Pooling pool = Pooling.Cls, float dropout = 0f, float embDropout = 0f, float patchDropout = 0f) =>
        ViTConfig.ForImages(channels, height, width, PatchSize, numClasses, Dim, Depth, Heads, DimHead, MlpDim, pool, dropout, embDropout, patchDropout);

    /// <summary>This preset with the sizes that are positive replaced (0 keeps the preset's): the `--patch`, `--dim`, ... flags.</summary>
    public ViTPreset WithSizes(int patch = 0, int dim = 0, int depth = 0, int heads = 0, int dimHead = 0, int mlpDim = 0) => this with
    {
        PatchSize = patch > 0 ? patch : PatchSize,
        Dim = dim > 0 ? dim : Dim,
        Depth = depth > 0 ? depth : Depth,
        Heads = heads > 0 ? heads : Heads,
        DimHead = dimHead > 0 ? dimHead : DimHead,
        MlpDim = mlpDim > 0 ? mlpDim : MlpDim,
    };
}

/// <summary>One row of <see cref="ViTPresets.List"/>.</summary>
public sealed record ViTPresetInfo(ViTPreset Preset, ViTConfig Config, long ParameterCount);

/// <summary>
/// Model sizes for small images (CIFAR 32×32×3, Fashion-MNIST 28×28×1), all with 4×4 patches:
/// 64 tokens + cls for CIFAR, 49 + cls for 28×28.
/// </summary>
public static class ViTPresets
{
    /// <summary>vit-micro: 128 wide, 4 blocks of 4 heads; for CPUs.</summary>
    public static readonly ViTPreset Micro = new("vit-micro", Dim: 128, Depth: 4, Heads: 4, DimHead: 32, MlpDim: 256);
    /// <summary>vit-tiny: 192 wide, 6 blocks of 3 heads.</summary>
    public static readonly ViTPreset Tiny = new("vit-tiny", Dim: 192, Depth: 6, Heads: 3, DimHead: 64, MlpDim: 384);
    /// <summary>vit-small: 384 wide, 7 blocks of 12 heads; for GPUs.</summary>
    public static readonly ViTPreset Small = new("vit-small", Dim: 384, Depth: 7, Heads: 12, DimHead: 32, MlpDim: 384);

    /// <summary>Every preset, smallest first.</summary>
    public static IReadOnlyList<ViTPreset> All { get; } = [Micro, Tiny, Small];

    /// <summary>The preset of that name (case-insensitive); an error lists the names.</summary>
    public static ViTPreset Get(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ViTScratchException($"unknown model preset '{name}'; choose one of: {string.Join(", ", All.Select(p => p.Name))}");

    /// <summary>
    /// The config of preset <paramref name="name"/> for images [channels, height, width] and
    /// <paramref name="numClasses"/> classes, with patches of <paramref name="patchSize"/> pixels
    /// (0 = the preset's, 4; the image side must be a multiple of it).
    /// </summary>
    public static ViTConfig Create(string name, int channels, int height, int width, int numClasses, int patchSize = 0,
        Pooling pool = Pooling.Cls, float dropout = 0f, float embDropout = 0f)
    {
        if (patchSize < 0) throw new ViTScratchException($"ViTPresets.Create: patch size {patchSize} must be positive (or 0 for the preset's)");
        return Get(name).WithSizes(patch: patchSize).ToConfig(channels, height, width, numClasses, pool, dropout, embDropout);
    }

    /// <summary>Every preset with its config and parameter count for the given input and classes.</summary>
    public static IReadOnlyList<ViTPresetInfo> List(int channels, int height, int width, int numClasses) =>
        All.Select(p =>
        {
            var config = p.ToConfig(channels, height, width, numClasses);
            return new ViTPresetInfo(p, config, config.ParameterCount);
        }).ToList();

    /// <summary>A text table of <see cref="List"/>, for the console runner's `vit info`.</summary>
    public static string Describe(int channels, int height, int width, int numClasses)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"presets for {channels}x{height}x{width} images, {numClasses} classes:");
        sb.AppendLine("  name        patch  tokens  dim  depth  heads  dim_head  mlp    parameters");
        foreach (var info in List(channels, height, width, numClasses))
        {
            var (p, c) = (info.Preset, info.Config);
            sb.AppendLine(string.Format(inv, "  {0,-10}  {1,5}  {2,6}  {3,3}  {4,5}  {5,5}  {6,8}  {7,4}  {8,12:N0}",
                p.Name, c.PatchSize, c.NumPatches + 1, c.Dim, c.Depth, c.Heads, c.DimHead, c.MlpDim, info.ParameterCount));
        }
        return sb.ToString();
    }
}
