using System.Text.Json;
using System.Text.Json.Serialization;

namespace ViTScratch.Training;

/// <summary>
/// Everything that defines a training run. Saved as runs/NAME/config.json and inside every
/// checkpoint, so a resumed run continues with exactly the settings it started with.
/// </summary>
public sealed partial record TrainOptions
{
    /// <summary>The recipe the options were resolved from ("" when built in code).</summary>
    public string Recipe { get; init; } = "";
    /// <summary>fashion-mnist, mnist, cifar10, cifar100 or folder.</summary>
    public string Dataset { get; init; } = "fashion-mnist";
    /// <summary>Where the dataset files are (null = the cache and the system directories).</summary>
    public string? DataDir { get; init; }
    /// <summary>The preset: vit-micro, vit-tiny or vit-small.</summary>
    public string Model { get; init; } = "vit-micro";
    /// <summary>Patch size; 0 takes the preset's (4).</summary>
    public int Patch { get; init; }
    /// <summary>Model width, depth, heads, width per head and MLP width; 0 takes the preset's.</summary>
    public int Dim { get; init; }
    /// <summary>Encoder blocks (0 = the preset's).</summary>
    public int Depth { get; init; }
    /// <summary>Attention heads (0 = the preset's).</summary>
    public int Heads { get; init; }
    /// <summary>Width per head (0 = the preset's).</summary>
    public int DimHead { get; init; }
    /// <summary>MLP hidden width (0 = the preset's).</summary>
    public int MlpDim { get; init; }
    /// <summary>"cls" or "mean" pooling before the head.</summary>
    public string Pool { get; init; } = "cls";
    /// <summary>Dropout in the encoder blocks.</summary>
    public float Dropout { get; init; }
    /// <summary>Dropout on the embedded tokens.</summary>
    public float EmbDropout { get; init; }
    /// <summary>Fraction of patch tokens left out of each training step (0 = off).</summary>
    public float PatchDropout { get; init; }
    /// <summary>
    /// The last N epochs train on every patch token: patch dropout is off for them (0 = never). The
    /// model is evaluated on every token, so a run with heavy patch dropout ends with a short phase
    /// at the low end of its cosine schedule that trains on what it will be tested on (FLIP's
    /// "unmasked tuning", Li et al. 2023). Needs <see cref="PatchDropout"/> &gt; 0; an unmasked epoch
    /// costs as much as one without patch dropout.
    /// </summary>
    public int UnmaskedEpochs { get; init; }
    /// <summary>
    /// The learning rate the unmasked epochs start from, cosine-decaying to <see cref="MinLr"/> by
    /// the end of the run (0 = they follow the run's own schedule, which is near its floor there).
    /// Needs <see cref="UnmaskedEpochs"/> &gt; 0.
    /// </summary>
    public float UnmaskedLr { get; init; }
    /// <summary>
    /// Decay of an exponential moving average of the weights (0 = off; timm's "model EMA", Polyak
    /// averaging in its exponential form): after every optimizer step the average moves a fraction
    /// 1 − decay of the way to the weights, so it spans about 1/(1 − decay) steps. Validation,
    /// best.safetensors, the test and every use of the run's checkpoints (`vit eval`, `predict`,
    /// `export`, PyTorch) take the average; the optimizer still steps the weights themselves, which
    /// train exactly as without it. See <see cref="Optim.WeightAverage"/>.
    /// </summary>
    public float Ema { get; init; }
    /// <summary>
    /// Average only the last N epochs' steps (0 = the whole run): the average starts as a copy of
    /// the weights at the first step of those epochs. Needs <see cref="Ema"/> &gt; 0.
    /// </summary>
    public int EmaEpochs { get; init; }
    /// <summary>The 0-based epoch whose first step starts the weight average (<see cref="Ema"/>), or -1 when there is none.</summary>
    public int EmaStartEpoch() => Ema == 0 ? -1 : Math.Max(0, Epochs - (EmaEpochs == 0 ? Epochs : EmaEpochs));
    /// <summary>Passes over the training split.</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>Images per optimizer step.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>"adamw" or "sgd".</summary>
    public string Optimizer { get; init; } = "adamw";
    /// <summary>Peak learning rate, after warmup.</summary>
    public float Lr { get; init; } = 1e-3f;
    /// <summary>Weight decay (decoupled for AdamW, L2 for SGD).</summary>
    public float WeightDecay { get; init; } = 0.05f;
    /// <summary>SGD momentum.</summary>
    public float Momentum { get; init; } = 0.9f;
    /// <summary>SGD with Nesterov momentum.</summary>
    public bool Nesterov { get; init; }
    /// <summary>Epochs of linear warmup before the cosine decay.</summary>
    public float WarmupEpochs { get; init; } = 1;
    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public float MinLr { get; init; } = 1e-5f;
    /// <summary>Label smoothing of the training loss.</summary>
    public float LabelSmoothing { get; init; } = 0.1f;
    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public float ClipNorm { get; init; } = 1f;
    /// <summary>crop, flip, randaugment, erase, mixup, cutmix (comma-separated); "default" = the dataset's crop/flip.</summary>
    public string Augment { get; init; } = "default";
    /// <summary>Pixels of zero padding for the random crop (torchvision's RandomCrop(size, padding)).</summary>
    public int CropPadding { get; init; } = 4;
    /// <summary>RandAugment: ops per image.</summary>
    public int RandAugmentOps { get; init; } = 2;
    /// <summary>RandAugment: magnitude, 0 to 10.</summary>
    public float RandAugmentMagnitude { get; init; } = 9;
    /// <summary>Random erasing ("erase" in <see cref="Augment"/>): probability of blanking one rectangle per image.</summary>
    public float ErasingProbability { get; init; } = 0.25f;
    /// <summary>auto, cpu, cuda or ilgpu-cpu.</summary>
    public string Device { get; init; } = "auto";
    /// <summary>
    /// The arithmetic of the matrix products: "fp32", "tf32" or "bf16" (<see cref="Kernels.MathPrecision"/>),
    /// set on the device's kernels when the trainer creates it. The CPU backends always compute in fp32.
    /// </summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>
    /// Capture one training step into a CUDA graph and replay it (--cuda-graph; see
    /// <see cref="CudaGraphProblem()"/> for what it cannot capture). On ilgpu-cpu the step runs in
    /// the same prepared form without a capture; on cpu it is an error.
    /// </summary>
    public bool CudaGraph { get; init; }
    /// <summary>Seed of the model, the order and the augmentation.</summary>
    public int Seed { get; init; }
    /// <summary>Data loader threads.</summary>
    public int Workers { get; init; } = 2;
    /// <summary>
    /// Fraction of the training split held out for validation (stratified, seeded by
    /// <see cref="SplitSeed"/>): best.safetensors is chosen on it. 0 = none, and then best.safetensors
    /// is simply the last epoch's model. The CLI's recipes use 0.1; 0 here keeps checkpoints written
    /// before validation splits existed resuming as they ran.
    /// </summary>
    public float ValSplit { get; init; }
    /// <summary>
    /// Validate after every N-th epoch (1 = every epoch), and always after the last epoch and after
    /// each unmasked epoch (<see cref="UnmaskedEpochs"/>), where the model changes fastest and the
    /// best checkpoint lies. best.safetensors is chosen among the validated epochs only. Validation
    /// is monitoring in the long middle of a run: with --tta flip it costs two forwards over the
    /// validation images, a quarter of a masked fmnist-best epoch, which a recipe can spend on training.
    /// </summary>
    public int ValEvery { get; init; } = 1;
    /// <summary>Whether the epoch with this 0-based index ends with a validation (<see cref="ValEvery"/>); the split itself comes from <see cref="ValSplit"/>.</summary>
    public bool ValidatesAfter(int epoch) =>
        (epoch + 1) % ValEvery == 0 || epoch + 1 == Epochs || epoch >= Epochs - UnmaskedEpochs;
    /// <summary>Seed of the validation split, separate from <see cref="Seed"/> so runs with different seeds share one validation set.</summary>
    public int SplitSeed { get; init; }
    /// <summary>When the test split is evaluated: "end" (once, on best.safetensors), "epoch" (also after every epoch, for the curves), or "never".</summary>
    public string EvalTest { get; init; } = "end";
    /// <summary>
    /// Test-time augmentation of every evaluation (validation, test, and by default `vit eval`,
    /// `vit predict` and `vit export` of the run's checkpoints):
    /// "none", or "flip": the logits of each image and of its mirror image (left-right), averaged,
    /// so a model trained with flips is judged on both views. It doubles the cost of evaluation, not
    /// of training.
    /// </summary>
    public string Tta { get; init; } = "none";
    /// <summary>An image folder's side length after decoding (shorter side scaled to it, centre-cropped) and its channel count (1 = grey, 3 = RGB).</summary>
    public int ImageSize { get; init; } = 32;
    /// <summary>Channels of an image folder's images after decoding.</summary>
    public int Channels { get; init; } = 3;
    /// <summary>Most memory, in MiB, the decoded images of one split of an image folder may take.</summary>
    public long CacheMb { get; init; } = 8192;
    /// <summary>An unreadable image in an image folder stops the run (else it is skipped with a warning).</summary>
    public bool Strict { get; init; }
    /// <summary>Use only the first N training images (0 = all): for quick experiments and tests.</summary>
    public int TrainLimit { get; init; }
    /// <summary>Use only the first N test images (0 = all).</summary>
    public int TestLimit { get; init; }
    /// <summary>The run directory.</summary>
    public string OutDir { get; init; } = "runs/default";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    /// <summary>As config.json and checkpoints store it.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>
    /// Reads and validates stored options; <paramref name="source"/> names the file in errors.
    /// With <paramref name="refuseUnknown"/> (a resume), an option this build does not know is an
    /// error: the file was written by a newer vit, and training on without that setting (an older
    /// build would, say, take a weight average for the weights) is another run than the one asked for.
    /// </summary>
    public static TrainOptions FromJson(string json, string source, bool refuseUnknown = false)
    {
        try
        {
            if (refuseUnknown && System.Text.Json.Nodes.JsonNode.Parse(json) is System.Text.Json.Nodes.JsonObject stored)
                foreach (var (name, _) in stored)
                    if (typeof(TrainOptions).GetProperty(name) is null)
                        throw new ViTScratchException($"{source}: its training options set '{ViTScratchException.Printable(name, 60)}', which this build of vit does not know; " +
                            "the run was written by a newer vit, and resuming it here would drop that setting: resume it with the version that wrote it");
            return (JsonSerializer.Deserialize<TrainOptions>(json, Json) ?? throw new JsonException("empty")).Validate(source);
        }
        catch (JsonException e)
        {
            throw new ViTScratchException($"{source}: the saved training options are not valid JSON ({ViTScratchException.Printable(e.Message, 160)})");
        }
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
        var known = new[] { "crop", "flip", "randaugment", "erase", "mixup", "cutmix" };
        if (Augment is "default" or "") return ["default"];
        if (Augment == "none") return [];
        var set = Augment.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        foreach (var s in set)
            if (!known.Contains(s))
                throw new ViTScratchException($"vit train: unknown augmentation '{s}' in --augment; choose from default, none, {string.Join(", ", known)}");
        return set;
    }
}
