namespace ViTScratch.Engine;

// Cross-entropy, fused with its softmax and label smoothing, and the accuracy counter.
public static partial class Ops
{
    /// <summary>
    /// Per-sample cross-entropy: logits: [B, C], labels: [B] (class indices as floats) → [B].
    /// The target is (1 - smoothing) on the label plus smoothing / C everywhere. Take
    /// <see cref="Mean"/> of the result for the usual batch loss.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor labels, float smoothing = 0f)
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
    public static void CountCorrect(Tensor logits, Tensor labels, Tensor counter)
    {
        RequireRank("CountCorrect", logits, 2, "[B, C]");
        if (labels.Length != logits.Shape[0]) throw ShapeError("CountCorrect", logits, labels, "do not match: labels must be [B]");
        logits.Kernels.CountCorrect(logits.Data, labels.Data, counter.Data, logits.Shape[0], logits.Shape[1]);
    }
}
