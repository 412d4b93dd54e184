using System.Text.Json;
using System.Text.Json.Serialization;
using ViTScratch.Training.Cli;

namespace ViTScratch.Training;

/// <summary>
/// Everything that defines a training run. Saved as runs/NAME/config.json and inside every
/// checkpoint, so a resumed run continues with exactly the settings it started with.
/// </summary>
public sealed record TrainOptions
{
    /// <summary>The recipe the options were resolved from ("" when built in code).</summary>
    public string Recipe { get; init; } = "";
    public string Dataset { get; init; } = "fashion-mnist";
    public string? DataDir { get; init; }
    public string Model { get; init; } = "vit-micro";
    /// <summary>Patch size; 0 takes the preset's (4).</summary>
    public int Patch { get; init; }
    /// <summary>Model width, depth, heads, width per head and MLP width; 0 takes the preset's.</summary>
    public int Dim { get; init; }
    public int Depth { get; init; }
    public int Heads { get; init; }
    public int DimHead { get; init; }
    public int MlpDim { get; init; }
    public string Pool { get; init; } = "cls";
    public float Dropout { get; init; }
    public float EmbDropout { get; init; }
    /// <summary>Fraction of patch tokens left out of each training step (0 = off).</summary>
    public float PatchDropout { get; init; }
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 128;
    public string Optimizer { get; init; } = "adamw";
    public float Lr { get; init; } = 1e-3f;
    public float WeightDecay { get; init; } = 0.05f;
    public float Momentum { get; init; } = 0.9f;
    public bool Nesterov { get; init; }
    public float WarmupEpochs { get; init; } = 1;
    public float MinLr { get; init; } = 1e-5f;
    public float LabelSmoothing { get; init; } = 0.1f;
    public float ClipNorm { get; init; } = 1f;
    /// <summary>crop, flip, randaugment, mixup, cutmix (comma-separated); "default" = the dataset's crop/flip.</summary>
    public string Augment { get; init; } = "default";
    /// <summary>Pixels of zero padding for the random crop (torchvision's RandomCrop(size, padding)).</summary>
    public int CropPadding { get; init; } = 4;
    public int RandAugmentOps { get; init; } = 2;
    public float RandAugmentMagnitude { get; init; } = 9;
    public string Device { get; init; } = "auto";
    public int Seed { get; init; }
    public int Workers { get; init; } = 2;
    /// <summary>
    /// Fraction of the training split held out for validation (stratified, seeded by
    /// <see cref="SplitSeed"/>): best.safetensors is chosen on it. 0 = none, and then best.safetensors
    /// is simply the last epoch's model. The CLI's recipes use 0.1; 0 here keeps checkpoints written
    /// before validation splits existed resuming as they ran.
    /// </summary>
    public float ValSplit { get; init; }
    /// <summary>Seed of the validation split, separate from <see cref="Seed"/> so runs with different seeds share one validation set.</summary>
    public int SplitSeed { get; init; }
    /// <summary>When the test split is evaluated: "end" (once, on best.safetensors), "epoch" (also after every epoch, for the curves), or "never".</summary>
    public string EvalTest { get; init; } = "end";
    /// <summary>An image folder's side length after decoding (shorter side scaled to it, centre-cropped) and its channel count (1 = grey, 3 = RGB).</summary>
    public int ImageSize { get; init; } = 32;
    public int Channels { get; init; } = 3;
    /// <summary>Most memory, in MiB, the decoded images of one split of an image folder may take.</summary>
    public long CacheMb { get; init; } = 8192;
    /// <summary>An unreadable image in an image folder stops the run (else it is skipped with a warning).</summary>
    public bool Strict { get; init; }
    /// <summary>Use only the first N training images (0 = all): for quick experiments and tests.</summary>
    public int TrainLimit { get; init; }
    /// <summary>Use only the first N test images (0 = all).</summary>
    public int TestLimit { get; init; }
    public string OutDir { get; init; } = "runs/default";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TrainOptions FromJson(string json, string source)
    {
        try
        {
            return (JsonSerializer.Deserialize<TrainOptions>(json, Json) ?? throw new JsonException("empty")).Validate(source);
        }
        catch (JsonException e)
        {
            throw new ViTScratchException($"{source}: the saved training options are not valid JSON ({ViTScratchException.Printable(e.Message, 160)})");
        }
    }

    /// <summary>
    /// Checks what <see cref="Parse"/> checks on the command line, for options read back from a
    /// checkpoint or built in code: every value in range and finite, every name known.
    /// </summary>
    public TrainOptions Validate(string source)
    {
        void Check(bool ok, string what)
        {
            if (!ok) throw new ViTScratchException($"{source}: the training options are out of range: {what}");
        }
        static bool In(float v, float lo, float hi) => float.IsFinite(v) && v >= lo && v <= hi;
        Check(new[] { "fashion-mnist", "mnist", "cifar10", "cifar100", "folder" }.Contains(Dataset), $"dataset '{Dataset}'");
        Check(ImageSize is >= 4 and <= 1024 && Channels is 1 or 3 && CacheMb is >= 0 and <= 1L << 30, "an image folder setting");
        Check(new[] { "vit-micro", "vit-tiny", "vit-small" }.Contains(Model), $"model '{Model}'");
        Check(Pool is "cls" or "mean", $"pool '{Pool}'");
        Check(Optimizer is "adamw" or "sgd", $"optimizer '{Optimizer}'");
        Check(Device is "auto" or "cpu" or "cuda" or "ilgpu-cpu", $"device '{Device}'");
        Check(EvalTest is "end" or "epoch" or "never", $"eval-test '{EvalTest}'");
        Check(Patch is >= 0 and <= 64 && Dim is >= 0 and <= 8192 && Depth is >= 0 and <= 256 && Heads is >= 0 and <= 256
              && DimHead is >= 0 and <= 1024 && MlpDim is >= 0 and <= 32768, "a model size");
        Check(Epochs is >= 1 and <= 100_000 && BatchSize is >= 1 and <= 65_536, $"epochs {Epochs}, batch {BatchSize}");
        Check(In(Lr, 0, 100) && In(MinLr, 0, 100) && In(WeightDecay, 0, 10) && In(Momentum, 0, 0.9999f) && In(WarmupEpochs, 0, 100_000)
              && In(LabelSmoothing, 0, 1) && In(ClipNorm, 0, 1e6f), "a rate, decay or clip");
        Check(In(Dropout, 0, 0.95f) && In(EmbDropout, 0, 0.95f) && In(PatchDropout, 0, 0.95f) && In(ValSplit, 0, 0.9f), "a dropout or split fraction");
        Check(CropPadding is >= 0 and <= 64 && RandAugmentOps is >= 0 and <= 16 && In(RandAugmentMagnitude, 0, 10), "an augmentation setting");
        Check(Seed >= 0 && SplitSeed >= 0 && Workers is >= 0 and <= 64 && TrainLimit >= 0 && TestLimit >= 0, "a seed, worker count or limit");
        AugmentSet();
        return this;
    }

    public const string Help = """
        vit train [options]
          --dataset NAME          fashion-mnist (default), mnist, cifar10, cifar100, or folder: your own
                                  images, --data DIR holding DIR/<class>/* (or train/, val/, test/
                                  of class folders); PNG, JPEG, BMP of any size and mode
          --image-size N          folder: shorter side scaled to N, centre crop N x N (default 32)
          --channels 1|3          folder: grey or RGB (default 3)
          --cache-mb N            folder: memory for decoded images, MiB (8192); the rest stream from disk
          --strict                folder: an unreadable image stops the run (default: skip, warn)
          --data DIR              where the dataset files are; only that directory is searched, and
                                  one that lacks them is an error (default: the cache, then
                                  /usr/share/datasets, then a download into the cache)
          --download              with --data: download the dataset into DIR when it is not there
          --model NAME            vit-micro, vit-tiny, vit-small
          --patch N               patch size
          --dim N --depth N --heads N --dim-head N --mlp-dim N   override the preset's sizes
          --recipe NAME           the bundle every default comes from (docs/recipes.md); each flag
                                  below overrides its part. Without it, the dataset's recipe:
            fmnist-quick   Fashion-MNIST/MNIST default: vit-micro, patch 7, 18 epochs, lr 2e-3,
                           wd 0.2, warmup 0.3, patch dropout 0.5, no augmentation (~11 CPU minutes)
            fmnist-best    a placeholder, not yet better than fmnist-quick (docs/recipes.md):
                           vit-micro, patch 7, patch dropout 0.5, crop+flip, 60 epochs
            cifar10-gpu    CIFAR-10 default: vit-small, patch 4, 200 epochs, lr 1e-3, warmup 5,
                           crop,flip,randaugment
            cifar100-gpu   the same on CIFAR-100
          --val-split F           hold out this fraction of the training set, stratified by class,
                                  to choose best.safetensors (recipes: 0.1; 0 = none, best = last)
          --split-seed N          seed of that split (default 0, whatever --seed is)
          --eval-test WHEN        end (default: once, on best.safetensors, after the last epoch),
                                  epoch (also after every epoch; never used to choose), never
          --pool cls|mean         pooling before the head (default cls)
          --dropout P --emb-dropout P
          --patch-dropout P       leave out this fraction of the patch tokens in each training step
                                  (CPU recipe 0.5, GPU recipe 0)
          --epochs N              --batch N   (default 128)
          --opt adamw|sgd         (default adamw)  --lr X
          --wd X                  weight decay (CPU recipe 0.2, GPU recipe 0.05)  --momentum X --nesterov (SGD)
          --warmup EPOCHS         linear warmup, then cosine decay  --min-lr X (default 1e-5)
          --label-smoothing X     (default 0.1)    --clip X    global grad-norm clip, 0 = off (default 1)
          --augment LIST          none | default (the dataset's crop/flip) | crop,flip,randaugment,mixup,cutmix
          --crop-padding N        pixels of padding for the random crop (default 4)
          --randaugment-n N --randaugment-m M     (default 2 and 9)
          --device NAME           auto (default), cpu, cuda, ilgpu-cpu
          --seed N                (default 0)      --workers N  data loader threads (default 2)
          --train-limit N --test-limit N          use only the first N images
          --out DIR               run directory (default runs/<dataset>-<model>, or the first free
                                  runs/<dataset>-<model>-N when that holds a run); a --out that
                                  holds a run is refused
          --force                 replace the run in --out (deletes its checkpoints and metrics)
          --resume [DIR|FILE]     continue a run from its last.safetensors, on the data it records
                                  (--data DIR re-targets it, with a warning if the data differs)
          Ctrl+C or SIGTERM saves last.safetensors at the last finished step and prints the
          command that resumes it (exit 130 / 143); a second one aborts at once.
        """;

    /// <summary>
    /// Reads the options of `vit train` from the command line: the recipe (--recipe, else the
    /// dataset's default recipe) gives every default, and each flag overrides its part.
    /// </summary>
    public static TrainOptions Parse(ArgParser a)
    {
        string[] datasets = ["fashion-mnist", "mnist", "cifar10", "cifar100", "folder"];
        var recipe = a.Has("recipe")
            ? Recipes.Get(a.Choice("recipe", "", Recipes.All.Select(r => r.Name).ToArray()))
            : Recipes.ForDataset(a.Choice("dataset", "fashion-mnist", datasets));
        var r = recipe.Defaults;
        string dataset = a.Choice("dataset", r.Dataset, datasets);
        string model = a.Choice("model", r.Model, "vit-micro", "vit-tiny", "vit-small");
        var o = new TrainOptions
        {
            Recipe = recipe.Name,
            Dataset = dataset,
            DataDir = a.Optional("data"),
            Model = model,
            Patch = a.Int("patch", r.Patch, 1, 64),
            Dim = a.Int("dim", r.Dim, 1, 8192),
            Depth = a.Int("depth", r.Depth, 1, 256),
            Heads = a.Int("heads", r.Heads, 1, 256),
            DimHead = a.Int("dim-head", r.DimHead, 1, 1024),
            MlpDim = a.Int("mlp-dim", r.MlpDim, 1, 32768),
            Pool = a.Choice("pool", r.Pool, "cls", "mean"),
            Dropout = a.Float("dropout", r.Dropout, 0f, 0.95f),
            EmbDropout = a.Float("emb-dropout", r.EmbDropout, 0f, 0.95f),
            PatchDropout = a.Float("patch-dropout", r.PatchDropout, 0f, 0.95f),
            Epochs = a.Int("epochs", r.Epochs, 1, 100_000),
            BatchSize = a.Int("batch", r.BatchSize, 1, 65_536),
            Optimizer = a.Choice("opt", r.Optimizer, "adamw", "sgd"),
            Lr = a.Float("lr", r.Lr, 0f, 100f),
            WeightDecay = a.Float("wd", r.WeightDecay, 0f, 10f),
            Momentum = a.Float("momentum", r.Momentum, 0f, 0.9999f),
            Nesterov = a.Has("nesterov") ? a.Flag("nesterov") : r.Nesterov,
            WarmupEpochs = a.Float("warmup", r.WarmupEpochs, 0f, 100_000f),
            MinLr = a.Float("min-lr", r.MinLr, 0f, 100f),
            LabelSmoothing = a.Float("label-smoothing", r.LabelSmoothing, 0f, 1f),
            ClipNorm = a.Float("clip", r.ClipNorm, 0f, 1e6f),
            Augment = a.String("augment", r.Augment),
            CropPadding = a.Int("crop-padding", r.CropPadding, 0, 64),
            RandAugmentOps = a.Int("randaugment-n", r.RandAugmentOps, 0, 16),
            RandAugmentMagnitude = a.Float("randaugment-m", r.RandAugmentMagnitude, 0f, 10f),
            ValSplit = a.Float("val-split", r.ValSplit, 0f, 0.9f),
            SplitSeed = a.Int("split-seed", r.SplitSeed, 0, int.MaxValue),
            EvalTest = a.Choice("eval-test", r.EvalTest, "end", "epoch", "never"),
            ImageSize = a.Int("image-size", r.ImageSize, 4, 1024),
            Channels = a.Choice("channels", r.Channels.ToString(System.Globalization.CultureInfo.InvariantCulture), "1", "3") == "1" ? 1 : 3,
            CacheMb = a.Int("cache-mb", (int)r.CacheMb, 0, 1 << 30),
            Strict = a.Has("strict") ? a.Flag("strict") : r.Strict,
            Device = a.Choice("device", "auto", "auto", "cpu", "cuda", "ilgpu-cpu"),
            Seed = a.Int("seed", 0, 0, int.MaxValue),
            Workers = a.Int("workers", 2, 0, 64),
            TrainLimit = a.Int("train-limit", 0, 0, int.MaxValue),
            TestLimit = a.Int("test-limit", 0, 0, int.MaxValue),
            OutDir = a.String("out", Path.Combine("runs", $"{dataset}-{model}")),
        };
        o.AugmentSet(); // validates the list now, before any data is loaded
        return o;
    }

    /// <summary>The model configuration these options describe for images of the given shape.</summary>
    public global::ViTScratch.Model.ViTConfig ModelConfig(int channels, int height, int width, int classes)
    {
        var preset = global::ViTScratch.Model.ViTPresets.Get(Model).WithSizes(Patch, Dim, Depth, Heads, DimHead, MlpDim);
        return preset.ToConfig(channels, height, width, classes, global::ViTScratch.Model.ViTConfig.ParsePool(Pool), Dropout, EmbDropout, PatchDropout);
    }

    /// <summary>The augmentation names in effect; "default" means the dataset's own crop/flip defaults.</summary>
    public HashSet<string> AugmentSet()
    {
        var known = new[] { "crop", "flip", "randaugment", "mixup", "cutmix" };
        if (Augment is "default" or "") return ["default"];
        if (Augment == "none") return [];
        var set = Augment.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        foreach (var s in set)
            if (!known.Contains(s))
                throw new ViTScratchException($"vit train: unknown augmentation '{s}' in --augment; choose from default, none, {string.Join(", ", known)}");
        return set;
    }
}
