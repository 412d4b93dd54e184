using System.CommandLine;

namespace ViTScratch.Training.Cli;

/// <summary>
/// `vit train`'s flags: one row per flag (its spelling, help and the <see cref="TrainOptions"/>
/// property it sets), and the parsing that resolves them against a recipe. Ranges and choices come
/// from <see cref="TrainOptions.Limits"/> and <see cref="TrainOptions.Choices"/>.
/// </summary>
public sealed class TrainArgs
{
    public const string Description =
        "train a ViT (default: vit-micro on Fashion-MNIST, CPU-friendly). The recipe (--recipe, else the " +
        "dataset's) gives every default; each flag overrides its part; config.json holds the resolved values." +
        " Ctrl+C or SIGTERM saves last.safetensors at the last finished step and prints the command that " +
        "resumes it (exit 130 / 143); a second one aborts at once.";

    /// <summary>One flag: the option and how its value lands in the options.</summary>
    private sealed record Row(Option Option, Func<TrainOptions, ParseResult, TrainOptions> Apply);

    private readonly List<Row> _rows = new();
    public Option<string> Recipe { get; }
    private readonly Option<int> _unmaskedEpochs;
    private readonly Option<float> _unmaskedLr;
    private readonly Option<string> _tta;
    private readonly Option<int> _emaEpochs;
    public Option<string> Dataset { get; }
    public Option<string> Out { get; }

    /// <summary>The flags a resumed run may still change: where and how it runs, never what it trains.</summary>
    public IReadOnlyList<Option> ResumeFlags { get; }
    public Option<string> Data { get; }
    public Option<string> Device { get; }
    public Option<int> Workers { get; }
    public Option<string> Precision { get; }
    public Option<bool> CudaGraph { get; }

    /// <summary>Every flag that sets an option, --recipe first.</summary>
    public IEnumerable<Option> Options => _rows.Select(r => r.Option).Prepend(Recipe);

    public TrainArgs()
    {
        Recipe = Flags.Choice("--recipe", "the bundle every default comes from (docs/recipes.md); each flag overrides its part. " +
            "Without it, the dataset's recipe. " + string.Join("; ", Recipes.All.Select(r => $"{r.Name}: {r.Summary}")),
            Recipes.All.Select(r => r.Name).ToArray(), "NAME");
        Dataset = Choice("--dataset", "fashion-mnist (default), mnist, cifar10, cifar100, or folder: your own images, --data DIR holding " +
            "DIR/<class>/* (or train/, val/, test/ of class folders); PNG, JPEG, BMP of any size and mode", nameof(TrainOptions.Dataset),
            (o, v) => o with { Dataset = v }, "NAME");
        Int("--image-size", "folder: shorter side scaled to N, centre crop N x N (default 32)", nameof(TrainOptions.ImageSize), (o, v) => o with { ImageSize = v });
        Choice("--channels", "folder: grey or RGB (default 3)", nameof(TrainOptions.Channels), (o, v) => o with { Channels = v == "1" ? 1 : 3 });
        var cacheMb = Flags.Long("--cache-mb", "folder: memory for decoded images, MiB (default 8192; 0 = none); the rest stream from disk", TrainOptions.Limits[nameof(TrainOptions.CacheMb)]);
        _rows.Add(new(cacheMb, (o, r) => r.Given(cacheMb) ? o with { CacheMb = r.GetValue(cacheMb) } : o));
        Switch("--strict", "folder: an unreadable image stops the run (default: skip it with a warning)", (o, v) => o with { Strict = v });
        Data = Flags.Text("--data", "where the dataset files are; only that directory is searched, and one that lacks them is an error " +
            "(default: the cache, then /usr/share/datasets, then a download into the cache)", "DIR");
        _rows.Add(new(Data, (o, r) => r.Given(Data) ? o with { DataDir = r.GetValue(Data) } : o));
        Choice("--model", "the preset (the recipe's by default)", nameof(TrainOptions.Model), (o, v) => o with { Model = v }, "NAME");
        Int("--patch", "patch size", nameof(TrainOptions.Patch), (o, v) => o with { Patch = v });
        Int("--dim", "model width (overrides the preset's)", nameof(TrainOptions.Dim), (o, v) => o with { Dim = v });
        Int("--depth", "number of transformer blocks", nameof(TrainOptions.Depth), (o, v) => o with { Depth = v });
        Int("--heads", "attention heads", nameof(TrainOptions.Heads), (o, v) => o with { Heads = v });
        Int("--dim-head", "width of each head", nameof(TrainOptions.DimHead), (o, v) => o with { DimHead = v });
        Int("--mlp-dim", "width of the MLP", nameof(TrainOptions.MlpDim), (o, v) => o with { MlpDim = v });
        Float("--val-split", "hold out this fraction of the training set, stratified by class, to choose best.safetensors " +
            "(recipes: 0.1; 0 = none, best = last)", nameof(TrainOptions.ValSplit), (o, v) => o with { ValSplit = v }, "F");
        Int("--val-every", "validate after every N-th epoch, and always after the last and each unmasked epoch " +
            "(default 1; best.safetensors is chosen among the validated epochs)", nameof(TrainOptions.ValEvery), (o, v) => o with { ValEvery = v });
        Int("--split-seed", "seed of that split (default 0, whatever --seed is)", nameof(TrainOptions.SplitSeed), (o, v) => o with { SplitSeed = v });
        Choice("--eval-test", "end (default: once, on best.safetensors, after the last epoch), epoch (also after every epoch; " +
            "never used to choose), never", nameof(TrainOptions.EvalTest), (o, v) => o with { EvalTest = v }, "WHEN");
        _tta = Choice("--tta", "test-time augmentation of validation and test, and the default of vit eval, predict and export for the run: " +
            "none (default; a recipe may set it) or flip (average the logits of each image and its mirror image)",
            nameof(TrainOptions.Tta), (o, v) => o with { Tta = v }, "MODE");
        Choice("--pool", "pooling before the head (default cls)", nameof(TrainOptions.Pool), (o, v) => o with { Pool = v });
        Float("--dropout", "dropout in the blocks", nameof(TrainOptions.Dropout), (o, v) => o with { Dropout = v }, "P");
        Float("--emb-dropout", "dropout after the embedding", nameof(TrainOptions.EmbDropout), (o, v) => o with { EmbDropout = v }, "P");
        Float("--patch-dropout", "leave out this fraction of the patch tokens in each training step (CPU recipe 0.5, GPU recipe 0)",
            nameof(TrainOptions.PatchDropout), (o, v) => o with { PatchDropout = v }, "P");
        _unmaskedEpochs = Int("--unmasked-epochs", "train the last N epochs on every patch, patch dropout off (0 = never; FLIP's unmasked tuning, docs/recipes.md)",
            nameof(TrainOptions.UnmaskedEpochs), (o, v) => o with { UnmaskedEpochs = v });
        _unmaskedLr = Float("--unmasked-lr", "start the unmasked epochs at this learning rate, cosine to --min-lr (0 = the run's own schedule, near its floor there)",
            nameof(TrainOptions.UnmaskedLr), (o, v) => o with { UnmaskedLr = v });
        Float("--ema", "keep a moving average of the weights with this decay (e.g. 0.998: about the last 500 steps; 0 = none, the default); " +
            "once it starts, validation, best.safetensors and the test take the average", nameof(TrainOptions.Ema), (o, v) => o with { Ema = v }, "DECAY");
        _emaEpochs = Int("--ema-epochs", "average only the last N epochs (0 = the whole run, the default)",
            nameof(TrainOptions.EmaEpochs), (o, v) => o with { EmaEpochs = v });
        Int("--epochs", "epochs to train", nameof(TrainOptions.Epochs), (o, v) => o with { Epochs = v });
        Int("--batch", "batch size (default 128)", nameof(TrainOptions.BatchSize), (o, v) => o with { BatchSize = v });
        Choice("--opt", "optimizer (default adamw)", nameof(TrainOptions.Optimizer), (o, v) => o with { Optimizer = v });
        Float("--lr", "peak learning rate", nameof(TrainOptions.Lr), (o, v) => o with { Lr = v });
        Float("--wd", "weight decay (CPU recipe 0.2, GPU recipe 0.05)", nameof(TrainOptions.WeightDecay), (o, v) => o with { WeightDecay = v });
        Float("--momentum", "SGD momentum (default 0.9)", nameof(TrainOptions.Momentum), (o, v) => o with { Momentum = v });
        Switch("--nesterov", "SGD with Nesterov momentum", (o, v) => o with { Nesterov = v });
        Float("--warmup", "epochs of linear warmup, then cosine decay", nameof(TrainOptions.WarmupEpochs), (o, v) => o with { WarmupEpochs = v }, "EPOCHS");
        Float("--min-lr", "learning rate at the end of the cosine (default 1e-5)", nameof(TrainOptions.MinLr), (o, v) => o with { MinLr = v });
        Float("--label-smoothing", "(default 0.1)", nameof(TrainOptions.LabelSmoothing), (o, v) => o with { LabelSmoothing = v });
        Float("--clip", "global gradient-norm clip, 0 = off (default 1)", nameof(TrainOptions.ClipNorm), (o, v) => o with { ClipNorm = v });
        var augment = Flags.Text("--augment", "none | default (the dataset's crop/flip) | a list of crop,flip,randaugment,erase,mixup,cutmix", "LIST");
        _rows.Add(new(augment, (o, r) => r.Given(augment) ? o with { Augment = r.GetValue(augment)! } : o));
        Int("--crop-padding", "pixels of padding for the random crop (default 4)", nameof(TrainOptions.CropPadding), (o, v) => o with { CropPadding = v });
        Int("--randaugment-n", "RandAugment operations per image (default 2)", nameof(TrainOptions.RandAugmentOps), (o, v) => o with { RandAugmentOps = v });
        Float("--randaugment-m", "RandAugment magnitude (default 9)", nameof(TrainOptions.RandAugmentMagnitude), (o, v) => o with { RandAugmentMagnitude = v }, "M");
        Float("--erase-p", "random erasing (erase in --augment): probability of blanking one rectangle of 2-33% of each image (default 0.25)", nameof(TrainOptions.ErasingProbability), (o, v) => o with { ErasingProbability = v }, "P");
        Device = Flags.Device(forTraining: true);
        _rows.Add(new(Device, (o, r) => r.Given(Device) ? o with { Device = r.GetValue(Device)! } : o));
        Precision = Flags.Precision(forTraining: true);
        _rows.Add(new(Precision, (o, r) => r.Given(Precision) ? o with { Precision = r.GetValue(Precision)! } : o));
        CudaGraph = Flags.CudaGraph();
        _rows.Add(new(CudaGraph, (o, r) => r.Given(CudaGraph) ? o with { CudaGraph = r.GetValue(CudaGraph) } : o));
        Int("--seed", "(default 0)", nameof(TrainOptions.Seed), (o, v) => o with { Seed = v });
        Workers = Int("--workers", "data loader threads (default 2)", nameof(TrainOptions.Workers), (o, v) => o with { Workers = v });
        Int("--train-limit", "use only the first N training images", nameof(TrainOptions.TrainLimit), (o, v) => o with { TrainLimit = v });
        Int("--test-limit", "use only the first N test images", nameof(TrainOptions.TestLimit), (o, v) => o with { TestLimit = v });
        Out = Flags.Text("--out", "run directory (default runs/<dataset>-<model>, or the first free runs/<dataset>-<model>-N when " +
            "that holds a run); a --out that holds a run is refused", "DIR");
        _rows.Add(new(Out, (o, r) => r.Given(Out) ? o with { OutDir = r.GetValue(Out)! } : o));
        ResumeFlags = [Data, Device, Workers, Precision, CudaGraph];
    }

    /// <summary>
    /// The options of a new run: the recipe (--recipe, else the dataset's default recipe) gives
    /// every default, each flag overrides its part, and the result is validated as a whole.
    /// </summary>
    public TrainOptions Parse(ParseResult r)
    {
        var recipe = r.Given(Recipe) ? Recipes.Get(r.GetValue(Recipe)!)
            : Recipes.ForDataset(r.GetValue(Dataset) ?? "fashion-mnist");
        var o = recipe.Defaults with { Recipe = recipe.Name };
        foreach (var row in _rows) o = row.Apply(o, r);
        // A recipe's unmasked epochs are the tail of its own schedule: when only --patch-dropout or
        // --epochs is given, they follow (none without patch dropout, at most the run's epochs). An
        // explicit --unmasked-epochs is taken as given and checked below.
        if (!r.Given(_unmaskedEpochs))
            o = o with { UnmaskedEpochs = o.PatchDropout == 0 ? 0 : Math.Min(o.UnmaskedEpochs, o.Epochs) };
        if (o.UnmaskedEpochs == 0 && !r.Given(_unmaskedLr)) o = o with { UnmaskedLr = 0 };
        // The same for a recipe's averaged tail: none without --ema, at most the run's epochs.
        if (!r.Given(_emaEpochs)) o = o with { EmaEpochs = o.Ema == 0 ? 0 : Math.Min(o.EmaEpochs, o.Epochs) };
        // A recipe's flip at evaluation belongs to its flips in training: an --augment without them
        // (or a dataset whose default has none) turns it off unless --tta is given.
        if (o.Tta == "flip" && !r.Given(_tta) && !TrainsWithFlips(o)) o = o with { Tta = "none" };
        if (!r.Given(Out)) o = o with { OutDir = Path.Combine("runs", $"{o.Dataset}-{o.Model}") };
        // Every flag was range-checked as it was parsed against the same table; this adds the
        // augmentation list (an error naming --augment), before any data is loaded.
        return o.Validate("vit train");
    }

    // Whether the training images are flipped: "flip" in --augment, or "default" on a dataset whose
    // own augmentation flips (CIFAR, image folders; not the digits and garments of the MNISTs).
    private static bool TrainsWithFlips(TrainOptions o)
    {
        var aug = o.AugmentSet();
        if (aug.Contains("flip")) return true;
        if (!aug.Contains("default")) return false;
        return Training.Data.DatasetCatalog.CanonicalName(o.Dataset) == "folder" || Training.Data.DatasetCatalog.Info(o.Dataset).DefaultHorizontalFlip;
    }

    /// <summary>`vit train`'s options from a command line (for tests and tools): parse errors are one-line exceptions.</summary>
    public static TrainOptions Parse(params string[] args)
    {
        var flags = new TrainArgs();
        var command = new Command("train");
        foreach (var option in flags.Options) command.Options.Add(option);
        var result = new RootCommand { command }.Parse(["train", .. args]);
        VitCommandLine.ThrowOnErrors(result);
        return flags.Parse(result);
    }

    private Option<int> Int(string name, string description, string property, Func<TrainOptions, int, TrainOptions> set)
    {
        var option = Flags.Int(name, description, TrainOptions.Limits[property]);
        _rows.Add(new(option, (o, r) => r.Given(option) ? set(o, r.GetValue(option)) : o));
        return option;
    }

    private Option<float> Float(string name, string description, string property, Func<TrainOptions, float, TrainOptions> set, string helpName = "X")
    {
        var option = Flags.Float(name, description, TrainOptions.Limits[property], helpName);
        _rows.Add(new(option, (o, r) => r.Given(option) ? set(o, r.GetValue(option)) : o));
        return option;
    }

    private Option<string> Choice(string name, string description, string property, Func<TrainOptions, string, TrainOptions> set, string? helpName = null)
    {
        var option = Flags.Choice(name, description, TrainOptions.Choices[property], helpName);
        _rows.Add(new(option, (o, r) => r.Given(option) ? set(o, r.GetValue(option)!) : o));
        return option;
    }

    private void Switch(string name, string description, Func<TrainOptions, bool, TrainOptions> set)
    {
        var option = Flags.Switch(name, description);
        _rows.Add(new(option, (o, r) => r.Given(option) ? set(o, r.GetValue(option)) : o));
    }
}
