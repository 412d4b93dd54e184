namespace ViTScratch.Training.Data;

/// <summary>
/// Carves a validation set out of a training set, stratified by class and seeded: for each class,
/// round(fraction x its count) of its images, drawn without replacement by a seeded shuffle of that
/// class's indices, go to validation; the rest stay for training. Both keep the original order
/// (the loader shuffles anyway), and the split depends only on (data, fraction, seed): the same
/// validation images for every training seed, so recipes compared on it are compared fairly.
///
/// Why: choosing a recipe or a checkpoint by test accuracy makes the reported test accuracy
/// optimistic. The test split is for one measurement at the end; every choice uses validation.
/// </summary>
public static class ValidationSplit
{
    /// <summary>Splits <paramref name="data"/> into (train, val); fraction 0 gives (data, null).</summary>
    public static (ImageDataset Train, ImageDataset? Val) Split(ImageDataset data, double fraction, int seed)
    {
        if (!(fraction >= 0 && fraction < 1))
            throw new ViTScratchException($"--val-split must be at least 0 and below 1, got {fraction}");
        if (fraction == 0) return (data, null);

        var byClass = new List<int>[data.ClassCount];
        for (int c = 0; c < byClass.Length; c++) byClass[c] = new List<int>();
        for (int i = 0; i < data.Count; i++) byClass[data.Labels[i]].Add(i);

        var isVal = new bool[data.Count];
        for (int c = 0; c < byClass.Length; c++)
        {
            var idx = byClass[c];
            int take = (int)Math.Round(fraction * idx.Count, MidpointRounding.AwayFromZero);
            // A partial Fisher-Yates shuffle: the first `take` positions end up a uniform sample.
            var rng = DataRandom.For(seed, epoch: -7, batch: c, sample: DataRandom.ShuffleStream);
            for (int k = 0; k < take; k++)
            {
                int j = k + rng.NextInt(idx.Count - k);
                (idx[k], idx[j]) = (idx[j], idx[k]);
                isVal[idx[k]] = true;
            }
        }
        var valIndices = Enumerable.Range(0, data.Count).Where(i => isVal[i]).ToArray();
        var trainIndices = Enumerable.Range(0, data.Count).Where(i => !isVal[i]).ToArray();
        if (valIndices.Length == 0)
            throw new ViTScratchException($"--val-split {fraction} of {data.Count} training images leaves no validation image; raise it or pass --val-split 0");
        if (trainIndices.Length == 0)
            throw new ViTScratchException($"--val-split {fraction} of {data.Count} training images leaves no training image; lower it");
        return (data.Subset(trainIndices), data.Subset(valIndices));
    }
}
