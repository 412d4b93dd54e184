namespace ViTScratch.Training.Data;

/// <summary>Batching, shuffling, augmentation and threading settings of a <see cref="DataLoader"/>.</summary>
public sealed class DataLoaderOptions
{
    /// <summary>
    /// Called with the batch index on the thread that is about to prepare that batch. A test hook:
    /// it makes a slow loader (a sleep) or an interruption at a chosen point reproducible.
    /// </summary>
    internal Action<int>? BeforePrepare { get; set; }

    /// <summary>Images per batch.</summary>
    public int BatchSize { get; set; } = 128;
    /// <summary>Shuffle each epoch with an order that depends only on (Seed, epoch).</summary>
    public bool Shuffle { get; set; } = true;
    /// <summary>
    /// Drop the last partial batch. Training may drop it (every step then has the same batch size,
    /// and the dropped samples differ each epoch because the order is reshuffled); evaluation must
    /// keep it so every test image is counted. Default false (keep).
    /// </summary>
    public bool DropLast { get; set; }
    /// <summary>Seed of the shuffle and the augmentation; with the epoch it fixes every batch.</summary>
    public long Seed { get; set; }
    /// <summary>Background threads preparing batches; 0 prepares them on the consuming thread.</summary>
    public int Workers { get; set; } = 2;
    /// <summary>Finished batches each worker may queue ahead of the consumer.</summary>
    public int PrefetchPerWorker { get; set; } = 2;
    /// <summary>Output (pixel/255 − mean)/std with the dataset's statistics; false gives pixel/255.</summary>
    public bool Normalise { get; set; } = true;

    /// <summary>Random crop with this much zero padding per side (0 = off).</summary>
    public int CropPadding { get; set; }
    /// <summary>Flip each image left-right with probability 1/2.</summary>
    public bool HorizontalFlip { get; set; }
    /// <summary>RandAugment: number of ops per image (0 = off).</summary>
    public int RandAugmentOps { get; set; }
    /// <summary>RandAugment magnitude on the 0..10 scale (timm's "m9" = 9).</summary>
    public float RandAugmentMagnitude { get; set; } = 9;
    /// <summary>Random erasing: probability of blanking one random rectangle of each image (0 = off; see <see cref="RandomErasing"/>).</summary>
    public float ErasingProbability { get; set; }
    /// <summary>Mixup Beta(α, α) parameter; 0 = off.</summary>
    public float MixupAlpha { get; set; }
    /// <summary>CutMix Beta(α, α) parameter; 0 = off.</summary>
    public float CutMixAlpha { get; set; }
    /// <summary>When both Mixup and CutMix are on: probability that a batch uses CutMix instead of Mixup.</summary>
    public float CutMixProbability { get; set; } = 0.5f;

    /// <summary>Training defaults for a dataset: shuffle, its default crop padding and flip; nothing else.</summary>
    public static DataLoaderOptions ForTraining(DatasetInfo info, int batchSize, long seed) => new()
    {
        BatchSize = batchSize, Seed = seed, Shuffle = true, DropLast = false,
        CropPadding = info.DefaultCropPadding, HorizontalFlip = info.DefaultHorizontalFlip,
    };

    /// <summary>Evaluation: fixed order, every sample, no augmentation.</summary>
    public static DataLoaderOptions ForEvaluation(int batchSize) => new()
    {
        BatchSize = batchSize, Shuffle = false, DropLast = false,
    };

    internal void Validate()
    {
        static void Check(bool ok, string message) { if (!ok) throw new ViTScratchException(message); }
        Check(BatchSize >= 1, $"Batch size must be at least 1 (got {BatchSize}).");
        Check(Workers >= 0, $"Data loader workers must be 0 or more (got {Workers}).");
        Check(PrefetchPerWorker >= 1, $"Prefetch per worker must be at least 1 (got {PrefetchPerWorker}).");
        Check(CropPadding >= 0, $"Crop padding must be 0 or more (got {CropPadding}).");
        Check(RandAugmentOps >= 0, $"RandAugment op count must be 0 or more (got {RandAugmentOps}).");
        Check(RandAugmentMagnitude is >= 0 and <= 10, $"RandAugment magnitude must be in 0..10 (got {RandAugmentMagnitude}).");
        Check(ErasingProbability is >= 0 and <= 1, $"Random erasing probability must be in 0..1 (got {ErasingProbability}).");
        Check(MixupAlpha >= 0 && CutMixAlpha >= 0, "Mixup / CutMix alpha must be 0 (off) or positive.");
        Check(CutMixProbability is >= 0 and <= 1, $"CutMix probability must be in 0..1 (got {CutMixProbability}).");
    }
}
