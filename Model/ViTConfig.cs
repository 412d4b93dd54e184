using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ViTScratch.Model;

/// <summary>How the token sequence becomes one vector per image: the cls token, or the mean of all tokens.</summary>
public enum Pooling
{
    /// <summary>The cls token's output.</summary>
    Cls,
    /// <summary>The mean of every token's output.</summary>
    Mean,
}

/// <summary>
/// Every constructor argument of vit-pytorch's ViT, with its defaults. Images are square
/// (<see cref="ImageSize"/> × ImageSize) and cut into square patches of <see cref="PatchSize"/>.
/// Serialises to a flat string dictionary (a safetensors __metadata__ block) and to JSON, both
/// with vit-pytorch's argument names (image_size, patch_size, ...).
/// </summary>
public sealed record ViTConfig(
    int ImageSize,
    int PatchSize,
    int NumClasses,
    int Dim,
    int Depth,
    int Heads,
    int MlpDim,
    Pooling Pool = Pooling.Cls,
    int Channels = 3,
    int DimHead = 64,
    float Dropout = 0f,
    float EmbDropout = 0f,
    float PatchDropout = 0f)
{
    /// <summary>Tokens from patches (the cls token comes on top): (image / patch)².</summary>
    public int NumPatches => (ImageSize / PatchSize) * (ImageSize / PatchSize);

    /// <summary>Length of one flattened patch: patch · patch · channels.</summary>
    public int PatchDim => PatchSize * PatchSize * Channels;

    /// <summary>Width of q (and k, v) over all heads.</summary>
    public int InnerDim => Heads * DimHead;

    /// <summary>vit-pytorch skips to_out when a single head already has the model width.</summary>
    public bool ProjectOut => !(Heads == 1 && DimHead == Dim);

    // Upper bounds far above any ViT this engine can train, low enough that every size derived from
    // them (tokens, patch length, parameter count) is computed without overflow, and that a corrupt
    // config is refused before it sizes an allocation.
    /// <summary>Upper bounds <see cref="Validate"/> enforces, so a corrupt or hostile checkpoint cannot ask for absurd allocations.</summary>
    public const int MaxImageSize = 8192, MaxChannels = 1024, MaxClasses = 1_000_000, MaxDim = 65536, MaxDepth = 1024,
        MaxHeads = 1024, MaxDimHead = 65536, MaxMlpDim = 1 << 20;

    /// <summary>Most tokens (patches + cls): attention holds tokens² scores per head.</summary>
    public const int MaxTokens = 65536;

    /// <summary>Longest flattened patch (patch · patch · channels) and widest q/k/v (heads · dim_head).</summary>
    public const int MaxPatchDim = 1 << 24, MaxInnerDim = 1 << 20;

    /// <summary>Checks that these arguments build a model; throws a ViTScratchException that says which one is wrong.</summary>
    public ViTConfig Validate()
    {
        InRange(ImageSize, "image_size", MaxImageSize); InRange(PatchSize, "patch_size", MaxImageSize); InRange(NumClasses, "num_classes", MaxClasses);
        InRange(Dim, "dim", MaxDim); InRange(Depth, "depth", MaxDepth); InRange(Heads, "heads", MaxHeads); InRange(MlpDim, "mlp_dim", MaxMlpDim);
        InRange(Channels, "channels", MaxChannels); InRange(DimHead, "dim_head", MaxDimHead);
        if (ImageSize % PatchSize != 0)
            throw new ViTScratchException($"image size {ImageSize} is not divisible by patch size {PatchSize}; choose a patch size that divides the image size");
        // In 64 bits: the int properties below are only safe once these pass.
        long grid = ImageSize / PatchSize, patchDim = (long)PatchSize * PatchSize * Channels, innerDim = (long)Heads * DimHead;
        if (grid * grid + 1 > MaxTokens)
            throw new ViTScratchException($"image size {ImageSize} with patch size {PatchSize} makes {grid * grid} patches, more than {MaxTokens - 1}; use a larger patch");
        if (patchDim > MaxPatchDim)
            throw new ViTScratchException($"patch size {PatchSize} with {Channels} channels makes patches of {patchDim} values, more than {MaxPatchDim}");
        if (innerDim > MaxInnerDim)
            throw new ViTScratchException($"heads {Heads} x dim_head {DimHead} = {innerDim}, more than {MaxInnerDim}");
        Probability(Dropout, "dropout"); Probability(EmbDropout, "emb_dropout"); Probability(PatchDropout, "patch_dropout");
        if (ParameterCount > int.MaxValue) throw new ViTScratchException($"this configuration has {ParameterCount} parameters, more than this engine supports");
        return this;
    }

    private static void InRange(int value, string name, int max)
    {
        if (value <= 0) throw new ViTScratchException($"{name} must be at least 1 (got {value})");
        if (value > max) throw new ViTScratchException($"{name} {value} is larger than this engine supports (at most {max})");
    }

    private static void Probability(float value, string name)
    {
        // Written so that NaN fails too.
        if (!(value >= 0f && value < 1f)) throw new ViTScratchException($"{name} {value} must be in [0, 1)");
    }

    /// <summary>
    /// A config for images of <paramref name="height"/> × <paramref name="width"/>: rejects non-square
    /// images (this ViT, like the article's, takes square ones) and sizes the patch does not divide.
    /// </summary>
    public static ViTConfig ForImages(int channels, int height, int width, int patchSize, int numClasses,
        int dim, int depth, int heads, int dimHead, int mlpDim, Pooling pool = Pooling.Cls, float dropout = 0f, float embDropout = 0f,
        float patchDropout = 0f)
    {
        if (height != width)
            throw new ViTScratchException($"images are {height}x{width} but this ViT takes square images; resize or crop them to a square");
        return new ViTConfig(height, patchSize, numClasses, dim, depth, heads, mlpDim, pool, channels, dimHead, dropout, embDropout, patchDropout).Validate();
    }

    /// <summary>
    /// Trainable scalars, in closed form: patch LayerNorm 2·pd, patch Linear pd·D + D, LayerNorm 2·D,
    /// pos_embedding (N + 1)·D, cls_token D; per layer LayerNorm 2·D, to_qkv D·3·inner, to_out
    /// inner·D + D (if present), LayerNorm 2·D, Linear D·mlp + mlp, Linear mlp·D + D; final
    /// LayerNorm 2·D; head D·C + C.
    /// </summary>
    public long ParameterCount
    {
        get
        {
            long d = Dim, pd = PatchDim, inner = InnerDim, mlp = MlpDim;
            long embed = 2 * pd + (pd * d + d) + 2 * d + (NumPatches + 1L) * d + d;
            long layer = 2 * d + d * 3 * inner + (ProjectOut ? inner * d + d : 0) + 2 * d + (d * mlp + mlp) + (mlp * d + d);
            return embed + Depth * layer + 2 * d + (d * NumClasses + NumClasses);
        }
    }

    // ---- string dictionary (safetensors __metadata__) ------------------------------------------

    /// <summary>The metadata keys this record writes; other keys in a dictionary are ignored when reading.</summary>
    public static readonly IReadOnlyList<string> MetadataKeys =
        ["image_size", "patch_size", "num_classes", "dim", "depth", "heads", "mlp_dim", "pool", "channels", "dim_head", "dropout", "emb_dropout", "patch_dropout"];

    /// <summary>Keys added after the first files were written: optional when reading, with these defaults.</summary>
    private static readonly IReadOnlyDictionary<string, string> OptionalMetadata = new Dictionary<string, string> { ["patch_dropout"] = "0" };

    /// <summary>The config as checkpoint metadata strings (read back by FromMetadata).</summary>
    public Dictionary<string, string> ToMetadata()
    {
        var inv = CultureInfo.InvariantCulture;
        return new Dictionary<string, string>
        {
            ["image_size"] = ImageSize.ToString(inv),
            ["patch_size"] = PatchSize.ToString(inv),
            ["num_classes"] = NumClasses.ToString(inv),
            ["dim"] = Dim.ToString(inv),
            ["depth"] = Depth.ToString(inv),
            ["heads"] = Heads.ToString(inv),
            ["mlp_dim"] = MlpDim.ToString(inv),
            ["pool"] = PoolName(Pool),
            ["channels"] = Channels.ToString(inv),
            ["dim_head"] = DimHead.ToString(inv),
            ["dropout"] = Dropout.ToString("R", inv), // shortest text that parses back to the same float
            ["emb_dropout"] = EmbDropout.ToString("R", inv),
            ["patch_dropout"] = PatchDropout.ToString("R", inv),
        };
    }

    /// <summary>
    /// Reads a config written by <see cref="ToMetadata"/>; every key is required but patch_dropout (later files).
    /// Every field is range-checked (<see cref="Validate"/>); whether the config matches the tensors
    /// stored beside it is checked when a model is loaded (ViT.Load).
    /// </summary>
    public static ViTConfig FromMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        string Get(string key) => metadata.TryGetValue(key, out var v) || OptionalMetadata.TryGetValue(key, out v)
            ? v
            : throw new ViTScratchException($"model metadata has no '{key}' entry (it needs all of: {string.Join(", ", MetadataKeys)}); was this file written by ViT.Save?");
        int Int(string key)
        {
            var s = Get(key);
            return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
                ? v : throw new ViTScratchException($"model metadata '{key}' = '{ViTScratchException.Printable(s)}' is not a whole number below 2^31");
        }
        float Float(string key)
        {
            var s = Get(key);
            return float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out float v)
                ? v : throw new ViTScratchException($"model metadata '{key}' = '{ViTScratchException.Printable(s)}' is not a number");
        }
        return new ViTConfig(Int("image_size"), Int("patch_size"), Int("num_classes"), Int("dim"), Int("depth"), Int("heads"),
            Int("mlp_dim"), ParsePool(Get("pool")), Int("channels"), Int("dim_head"), Float("dropout"), Float("emb_dropout"), Float("patch_dropout")).Validate();
    }

    /// <summary>The pooling's name in metadata and on the command line: "cls" or "mean".</summary>
    public static string PoolName(Pooling pool) => pool == Pooling.Mean ? "mean" : "cls";

    /// <summary>The pooling named "cls" or "mean".</summary>
    public static Pooling ParsePool(string s) => s switch
    {
        "cls" => Pooling.Cls,
        "mean" => Pooling.Mean,
        _ => throw new ViTScratchException($"pool '{ViTScratchException.Printable(s)}' is not one of: cls, mean"),
    };

    // ---- JSON ----------------------------------------------------------------------------------

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectRequiredConstructorParameters = true,
    };

    /// <summary>The config as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Parses JSON written by <see cref="ToJson"/> (arguments without a default are required; unknown keys are an error).</summary>
    public static ViTConfig FromJson(string json)
    {
        try
        {
            return (JsonSerializer.Deserialize<ViTConfig>(json, JsonOptions)
                ?? throw new ViTScratchException("model config JSON is 'null'")).Validate();
        }
        catch (JsonException e)
        {
            throw new ViTScratchException($"model config JSON is invalid: {e.Message}", e);
        }
    }
}
