namespace ViTScratch.Training.Cli;

/// <summary>
/// `vit train`'s flags: its help text and the parsing that turns them into the library's
/// <see cref="TrainOptions"/> (moved here from TrainOptions when the runner was split from the library).
/// </summary>
public static class TrainArgs
{
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
}
