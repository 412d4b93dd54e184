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
            return JsonSerializer.Deserialize<TrainOptions>(json, Json) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new ViTScratchException($"{source}: the saved training options are not valid JSON ({e.Message})");
        }
    }

    public const string Help = """
        vit train [options]
          --dataset NAME          fashion-mnist (default), mnist, cifar10, cifar100
          --data DIR              where the dataset files are; only that directory is searched, and
                                  one that lacks them is an error (default: the cache, then
                                  /usr/share/datasets, then a download into the cache)
          --download              with --data: download the dataset into DIR when it is not there
          --model NAME            vit-micro, vit-tiny, vit-small
          --patch N               patch size
          --dim N --depth N --heads N --dim-head N --mlp-dim N   override the preset's sizes
          Defaults follow the dataset. Fashion-MNIST/MNIST (the CPU recipe): vit-micro, patch 7,
          18 epochs, lr 2e-3, weight decay 0.2, warmup 0.3, patch dropout 0.5, no augmentation.
          CIFAR (the GPU recipe): vit-small, patch 4, 200 epochs, lr 1e-3, warmup 5, crop,flip,randaugment.
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

    /// <summary>Reads the options of `vit train` from the command line.</summary>
    public static TrainOptions Parse(ArgParser a)
    {
        string dataset = a.Choice("dataset", "fashion-mnist", "fashion-mnist", "mnist", "cifar10", "cifar100");
        // Two recipes, chosen by the dataset; every flag overrides its part.
        // CPU (MNIST-like, 28x28x1): vit-micro with 7x7 patches (16 tokens + cls), no augmentation,
        //   weight decay 0.2, and patch dropout 0.5: each step trains on the cls token and 8 random
        //   patches, which halves its cost and regularises, so 18 epochs take about the time 8 full
        //   ones did (about 12 minutes on 2 cores). Without patch dropout the model sat at 89.1-89.4%
        //   after 8 epochs whatever else was tuned (flips, crops, batch 64, mean pooling, dropout,
        //   10 epochs, shifted patches, weight averaging); with it, the test loss keeps falling past
        //   the point where full steps overfit (docs/fashion-cpu-trials.md).
        //   4x4 patches give 49 tokens and three times the work for no gain at this budget.
        // GPU (CIFAR, 32x32x3): vit-small, 4x4 patches, 200 epochs, 5 warmup epochs,
        //   crop + flip + RandAugment — the public recipe that reached about 91% on CIFAR-10.
        bool cifar = dataset.StartsWith("cifar", StringComparison.Ordinal);
        string model = a.Choice("model", cifar ? "vit-small" : "vit-micro", "vit-micro", "vit-tiny", "vit-small");
        var o = new TrainOptions
        {
            Dataset = dataset,
            DataDir = a.Optional("data"),
            Model = model,
            Patch = a.Int("patch", cifar ? 4 : 7, 1, 64),
            Dim = a.Int("dim", 0, 1, 8192),
            Depth = a.Int("depth", 0, 1, 256),
            Heads = a.Int("heads", 0, 1, 256),
            DimHead = a.Int("dim-head", 0, 1, 1024),
            MlpDim = a.Int("mlp-dim", 0, 1, 32768),
            Pool = a.Choice("pool", "cls", "cls", "mean"),
            Dropout = a.Float("dropout", 0f, 0f, 0.95f),
            EmbDropout = a.Float("emb-dropout", 0f, 0f, 0.95f),
            PatchDropout = a.Float("patch-dropout", cifar ? 0f : 0.5f, 0f, 0.95f),
            Epochs = a.Int("epochs", cifar ? 200 : 18, 1, 100_000),
            BatchSize = a.Int("batch", 128, 1, 65_536),
            Optimizer = a.Choice("opt", "adamw", "adamw", "sgd"),
            Lr = a.Float("lr", cifar ? 1e-3f : 2e-3f, 0f, 100f),
            WeightDecay = a.Float("wd", cifar ? 0.05f : 0.2f, 0f, 10f),
            Momentum = a.Float("momentum", 0.9f, 0f, 0.9999f),
            Nesterov = a.Flag("nesterov"),
            WarmupEpochs = a.Float("warmup", cifar ? 5f : 0.3f, 0f, 100_000f),
            MinLr = a.Float("min-lr", 1e-5f, 0f, 100f),
            LabelSmoothing = a.Float("label-smoothing", 0.1f, 0f, 1f),
            ClipNorm = a.Float("clip", 1f, 0f, 1e6f),
            Augment = a.String("augment", cifar ? "crop,flip,randaugment" : "none"),
            CropPadding = a.Int("crop-padding", 4, 0, 64),
            RandAugmentOps = a.Int("randaugment-n", 2, 0, 16),
            RandAugmentMagnitude = a.Float("randaugment-m", 9f, 0f, 10f),
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
