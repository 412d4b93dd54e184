using System.Globalization;
using ViTScratch.Kernels;

namespace ViTScratch.Training;

/// <summary>
/// The range a numeric training option must lie in. <see cref="ZeroMeansPreset"/> marks the model
/// sizes, where 0 in code or in a saved run means "the preset's" while a value given on purpose must
/// lie in [<see cref="Min"/>, <see cref="Max"/>].
/// </summary>
public sealed record OptionLimit(string Name, double Min, double Max, bool ZeroMeansPreset = false)
{
    /// <summary>What is wrong with <paramref name="value"/> ("must be between 1 and 256, got 0"), or null when it is in range.</summary>
    public string? Problem(double value, bool explicitlyGiven = true) =>
        double.IsFinite(value) && (value >= Min && value <= Max || value == 0 && ZeroMeansPreset && !explicitlyGiven)
            ? null
            : $"must be between {Format(Min)} and {Format(Max)}, got {Format(value)}";

    private static string Format(double v) => ((float)v).ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// The one list of rules a training run's options obey: read by <see cref="Validate"/> (options
/// from code, config.json or a checkpoint) and by the runner's flags, so a rule changes in one place.
/// </summary>
public sealed partial record TrainOptions
{
    /// <summary>The names of <see cref="MathPrecision"/> as options and config.json spell them.</summary>
    public static IReadOnlyList<string> PrecisionNames { get; } = ["fp32", "tf32", "bf16"];

    /// <summary>The names the string-valued options accept, by property name.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Choices { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        [nameof(Dataset)] = ["fashion-mnist", "mnist", "cifar10", "cifar100", "folder"],
        [nameof(Model)] = ["vit-micro", "vit-tiny", "vit-small"],
        [nameof(Pool)] = ["cls", "mean"],
        [nameof(Optimizer)] = ["adamw", "sgd"],
        [nameof(Device)] = BackendFactory.Names,
        [nameof(EvalTest)] = ["end", "epoch", "never"],
        [nameof(Tta)] = ["none", "flip"],
        [nameof(Channels)] = ["1", "3"],
        [nameof(Precision)] = PrecisionNames,
    };

    /// <summary>The range of every numeric option, by property name.</summary>
    public static IReadOnlyDictionary<string, OptionLimit> Limits { get; } = new OptionLimit[]
    {
        new(nameof(Patch), 1, 64, ZeroMeansPreset: true),
        new(nameof(Dim), 1, 8192, ZeroMeansPreset: true),
        new(nameof(Depth), 1, 256, ZeroMeansPreset: true),
        new(nameof(Heads), 1, 256, ZeroMeansPreset: true),
        new(nameof(DimHead), 1, 1024, ZeroMeansPreset: true),
        new(nameof(MlpDim), 1, 32768, ZeroMeansPreset: true),
        new(nameof(Dropout), 0, 0.95), new(nameof(EmbDropout), 0, 0.95), new(nameof(PatchDropout), 0, 0.95),
        new(nameof(UnmaskedEpochs), 0, 100_000), new(nameof(UnmaskedLr), 0, 100), new(nameof(Ema), 0, 0.99999), new(nameof(EmaEpochs), 0, 100_000),
        new(nameof(Epochs), 1, 100_000), new(nameof(BatchSize), 1, 65_536),
        new(nameof(Lr), 0, 100), new(nameof(MinLr), 0, 100), new(nameof(WeightDecay), 0, 10), new(nameof(Momentum), 0, 0.9999),
        new(nameof(WarmupEpochs), 0, 100_000), new(nameof(LabelSmoothing), 0, 1), new(nameof(ClipNorm), 0, 1e6),
        new(nameof(CropPadding), 0, 64), new(nameof(RandAugmentOps), 0, 16), new(nameof(RandAugmentMagnitude), 0, 10),
        new(nameof(ErasingProbability), 0, 1),
        new(nameof(ValSplit), 0, 0.9), new(nameof(ValEvery), 1, 100_000), new(nameof(SplitSeed), 0, int.MaxValue),
        new(nameof(ImageSize), 4, 1024), new(nameof(CacheMb), 0, 1 << 30),
        new(nameof(Seed), 0, int.MaxValue), new(nameof(Workers), 0, 64),
        new(nameof(TrainLimit), 0, int.MaxValue), new(nameof(TestLimit), 0, int.MaxValue),
    }.ToDictionary(l => l.Name);

    // The current value of each numeric option, in the order of Limits.
    private IEnumerable<(string Name, double Value)> Numbers() =>
    [
        (nameof(Patch), Patch), (nameof(Dim), Dim), (nameof(Depth), Depth), (nameof(Heads), Heads), (nameof(DimHead), DimHead),
        (nameof(MlpDim), MlpDim), (nameof(Dropout), Dropout), (nameof(EmbDropout), EmbDropout), (nameof(PatchDropout), PatchDropout),
        (nameof(UnmaskedEpochs), UnmaskedEpochs), (nameof(UnmaskedLr), UnmaskedLr), (nameof(Ema), Ema), (nameof(EmaEpochs), EmaEpochs), (nameof(Epochs), Epochs), (nameof(BatchSize), BatchSize), (nameof(Lr), Lr), (nameof(MinLr), MinLr),
        (nameof(WeightDecay), WeightDecay), (nameof(Momentum), Momentum), (nameof(WarmupEpochs), WarmupEpochs),
        (nameof(LabelSmoothing), LabelSmoothing), (nameof(ClipNorm), ClipNorm), (nameof(CropPadding), CropPadding),
        (nameof(RandAugmentOps), RandAugmentOps), (nameof(RandAugmentMagnitude), RandAugmentMagnitude), (nameof(ErasingProbability), ErasingProbability),
        (nameof(ValSplit), ValSplit), (nameof(ValEvery), ValEvery),
        (nameof(SplitSeed), SplitSeed), (nameof(ImageSize), ImageSize), (nameof(CacheMb), CacheMb), (nameof(Seed), Seed),
        (nameof(Workers), Workers), (nameof(TrainLimit), TrainLimit), (nameof(TestLimit), TestLimit),
    ];

    private IEnumerable<(string Name, string Value)> Names() =>
    [
        (nameof(Dataset), Dataset), (nameof(Model), Model), (nameof(Pool), Pool), (nameof(Optimizer), Optimizer),
        (nameof(Device), Device), (nameof(EvalTest), EvalTest), (nameof(Tta), Tta), (nameof(Channels), Channels.ToString(CultureInfo.InvariantCulture)),
        (nameof(Precision), Precision),
    ];

    /// <summary>
    /// Checks the options against <see cref="Limits"/> and <see cref="Choices"/> (and the
    /// augmentation list), for options built in code or read back from config.json or a checkpoint;
    /// the first problem is a one-line <see cref="ViTScratchException"/> naming the option.
    /// </summary>
    public TrainOptions Validate(string source)
    {
        foreach (var (name, value) in Numbers())
            if (Limits[name].Problem(value, explicitlyGiven: false) is string problem)
                throw OutOfRange(source, $"{name} {problem}");
        foreach (var (name, value) in Names())
            if (!Choices[name].Contains(value))
                throw OutOfRange(source, $"{name} must be one of {string.Join(", ", Choices[name])}; got '{ViTScratchException.Printable(value)}'");
        AugmentSet();
        if (UnmaskedEpochs > 0 && PatchDropout == 0)
            throw new ViTScratchException($"{source}: --unmasked-epochs {UnmaskedEpochs} turns patch dropout off for the last epochs, but patch dropout is 0; " +
                                          "give --patch-dropout P, or drop --unmasked-epochs");
        if (UnmaskedLr > 0 && UnmaskedEpochs == 0)
            throw new ViTScratchException($"{source}: --unmasked-lr {UnmaskedLr:G3} sets the learning rate of the unmasked epochs, but there are none; " +
                                          "give --unmasked-epochs N, or drop --unmasked-lr");
        if (UnmaskedEpochs > Epochs)
            throw new ViTScratchException($"{source}: --unmasked-epochs {UnmaskedEpochs} is more than the run's {Epochs} epochs; give at most --unmasked-epochs {Epochs}");
        if (EmaEpochs > 0 && Ema == 0)
            throw new ViTScratchException($"{source}: --ema-epochs {EmaEpochs} says how many epochs the weight average spans, but there is no average; " +
                                          "give --ema DECAY (e.g. 0.998), or drop --ema-epochs");
        if (EmaEpochs > Epochs)
            throw new ViTScratchException($"{source}: --ema-epochs {EmaEpochs} is more than the run's {Epochs} epochs; give at most --ema-epochs {Epochs} (or 0: the whole run)");
        if (CudaGraphProblem() is string graph) throw new ViTScratchException($"{source}: {graph}");
        return this;
    }

    /// <summary>Why <see cref="CudaGraph"/> cannot capture this run's step, or null (also null when it is off).</summary>
    public string? CudaGraphProblem()
    {
        if (!CudaGraph) return null;
        var aug = AugmentSet();
        return CudaGraphProblem(Device, Dropout > 0 || EmbDropout > 0, PatchDropout > 0, aug.Contains("mixup") || aug.Contains("cutmix"));
    }

    /// <summary>
    /// The rule of --cuda-graph, shared with `vit bench`. A graph replays the kernel arguments of
    /// its capture, so a step whose kernels take a value that changes every step cannot be captured
    /// yet: dropout (its mask seed), patch dropout (its kept tokens, chosen on the host, and the
    /// number of copies that gather them) and mixup/cutmix (the per-batch λ, and only some batches
    /// are mixed). The learning rate and the optimizer's step are read from the device instead.
    /// </summary>
    public static string? CudaGraphProblem(string device, bool dropout, bool patchDropout, bool mixing) =>
        device == "cpu" ? "--cuda-graph needs --device cuda: the cpu backend launches no GPU kernels to capture (drop --cuda-graph; a run resumed on the cpu: add --cuda-graph false)"
        : dropout ? "--cuda-graph cannot capture dropout yet (its mask seed is a kernel argument that changes every step); " +
                    "use --dropout 0 --emb-dropout 0, or drop --cuda-graph"
        : patchDropout ? "--cuda-graph cannot capture patch dropout yet (the kept tokens are chosen on the host every step); " +
                         "use --patch-dropout 0, or drop --cuda-graph"
        : mixing ? "--cuda-graph cannot capture mixup or cutmix yet (the loss weight changes every batch); " +
                   "leave them out of --augment, or drop --cuda-graph"
        : null;

    private static ViTScratchException OutOfRange(string source, string what) =>
        new($"{source}: the training options are out of range: {what}");

    /// <summary><see cref="Precision"/> as the kernels take it (a method, so config.json does not repeat it).</summary>
    public MathPrecision KernelPrecision() => MathPrecisionOf(Precision);

    /// <summary>The <see cref="MathPrecision"/> a name of <see cref="PrecisionNames"/> stands for.</summary>
    public static MathPrecision MathPrecisionOf(string name) => name switch
    {
        "tf32" => MathPrecision.Tf32,
        "bf16" => MathPrecision.Bf16,
        _ => MathPrecision.Fp32,
    };
}
