namespace ViTScratch.Engine;

// Cross-entropy, fused with its softmax and label smoothing, and the accuracy counter.
public static partial class Ops
{
    /// <summary>
    /// Cross-entropy of logits [B, C] against integer class labels (B of them, each in [0, C)),
    /// fused with the softmax. The target is (1 - smoothing) on the label plus smoothing / C
    /// everywhere. <paramref name="reduction"/>: <see cref="Reduction.Mean"/> (default, a scalar:
    /// the usual batch loss, as PyTorch's), <see cref="Reduction.Sum"/>, or <see cref="Reduction.None"/>
    /// (the per-sample losses, [B]). The labels are uploaded into the current scope.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, ReadOnlySpan<int> labels, float smoothing = 0f, Reduction reduction = Reduction.Mean)
    {
        RequireRank("CrossEntropy", logits, 2, "[B, C]");
        int rows = logits.Shape[0], classes = logits.Shape[1];
        if (labels.Length != rows)
            throw new ViTScratchException($"CrossEntropy: {labels.Length} labels for logits {ShapeOf.Format(logits.Shape)}; give one label per row");
        var asFloats = new float[rows];
        for (int i = 0; i < rows; i++)
        {
            if ((uint)labels[i] >= (uint)classes)
                throw new ViTScratchException($"CrossEntropy: label {labels[i]} at index {i} is not a class of logits with {classes} classes (0 to {classes - 1})");
            asFloats[i] = labels[i];
        }
        var perSample = CrossEntropy(logits, Tensor.Input(logits.Device, asFloats, rows), smoothing);
        return reduction switch
        {
            Reduction.Mean => Mean(perSample),
            Reduction.Sum => Sum(perSample),
            Reduction.None => perSample,
            _ => throw new ViTScratchException($"CrossEntropy: unknown reduction {reduction}"),
        };
    }

    /// <summary>
    /// Per-sample cross-entropy: logits: [B, C], labels: [B] (class indices as floats, as the data
    /// loader's batches carry them) → [B]. The target is (1 - smoothing) on the label plus
    /// smoothing / C everywhere; the trainer takes <see cref="Mean"/> of it.
    /// </summary>
    internal static Tensor CrossEntropy(Tensor logits, Tensor labels, float smoothing = 0f)
    {
        RequireRank("CrossEntropy", logits, 2, "[B, C]");
        if (labels.Rank != 1 || labels.Shape[0] != logits.Shape[0])
            throw ShapeError("CrossEntropy", logits, labels, "do not match: labels must be [B] for logits [B, C]");
        if (smoothing is < 0f or > 1f) throw new ViTScratchException($"CrossEntropy: label smoothing {smoothing} must be in [0, 1]");
        if (labels.RequiresGrad) throw new ViTScratchException("CrossEntropy: labels cannot require a gradient");
        int rows = logits.Shape[0], classes = logits.Shape[1];
        var losses = Result("CrossEntropy", Dims(rows), logits, labels); // losses: [B]
        logits.Kernels.CrossEntropyForward(logits.Data, labels.Data, losses.Data, rows, classes, smoothing);
        OnBackward(losses, () =>
        {
            Tensor.ZeroIfUnwritten(logits); // the kernel adds
            logits.Kernels.CrossEntropyBackward(logits.Data, labels.Data, losses.Grad!, logits.Grad!, rows, classes, smoothing);
        });
        return losses;
    }

    /// <summary>Adds the number of rows of logits [B, C] whose arg-max equals the label to counter[0], on the device.</summary>
    internal static void CountCorrect(Tensor logits, Tensor labels, Tensor counter)
    {
        RequireRank("CountCorrect", logits, 2, "[B, C]");
        if (labels.Length != logits.Shape[0]) throw ShapeError("CountCorrect", logits, labels, "do not match: labels must be [B]");
        logits.Kernels.CountCorrect(logits.Data, labels.Data, counter.Data, logits.Shape[0], logits.Shape[1]);
    }
}

/// <summary>How a loss over a batch is reduced: to its mean (the default), its sum, or not at all (one loss per sample).</summary>
public enum Reduction
{
    /// <summary>The mean over the batch: a scalar.</summary>
    Mean,
    /// <summary>The sum over the batch: a scalar.</summary>
    Sum,
    /// <summary>One loss per sample: [B].</summary>
    None,
}
