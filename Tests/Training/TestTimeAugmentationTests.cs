using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Training;
using ViTScratch.Training.Data;

namespace ViTScratch.Tests.Training;

/// <summary>
/// --tta flip: each evaluated image is judged by the mean of the logits of the image and of its
/// mirror image. Checked against hand-written mirrors and a float64 evaluation computed here one
/// image at a time, not against the production path.
/// </summary>
public class TestTimeAugmentationTests
{
    private static readonly Device Cpu = Device.Create("cpu");

    [Fact]
    public void MirrorReversesEveryRowOfEveryChannelAndImage()
    {
        // Two images of 2 channels, 2 rows of 3: rows reversed in place, nothing moves between rows.
        float[] images = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24];
        float[] expected = [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10, 15, 14, 13, 18, 17, 16, 21, 20, 19, 24, 23, 22];
        var output = new float[images.Length];
        SampleTransforms.MirrorLeftRight(images, output, width: 3);
        Assert.Equal(expected, output);
        Assert.Throws<ArgumentException>(() => SampleTransforms.MirrorLeftRight(images.AsSpan(0, 23), new float[23], width: 3));
    }

    // A small random model over 8x8 grey images, 3 classes.
    private static ViT Model(int seed) => new(new ViTConfig(ImageSize: 8, PatchSize: 4, NumClasses: 3, Dim: 16, Depth: 2, Heads: 2,
        MlpDim: 32, Channels: 1, DimHead: 8), Cpu, seed);

    // Logits of a plain forward; on the CPU a batch's logits do not depend on what else is in it,
    // so these agree with Trainer.Logits' own forwards to the bit (which the exact check below uses).
    private static float[] Forward(ViT model, float[] images, int count)
    {
        using (Tensor.NoGrad())
            return model.Forward(Tensor.FromArray(Cpu, images, count, 1, 8, 8)).ToArray();
    }

    private static float[] Mirrored(float[] images)
    {
        var m = new float[images.Length];
        for (int i = 0; i < images.Length; i++) m[i] = images[i - i % 8 + 7 - i % 8];
        return m;
    }

    [Fact]
    public void FlipLogitsAreTheMeanOfTheImagesAndTheirMirrors()
    {
        var model = Model(seed: 5);
        model.Eval();
        var rng = new Random(11);
        var images = Enumerable.Range(0, 3 * 64).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] plain = Forward(model, images, 3), mirrored = Forward(model, Mirrored(images), 3);
        float[] flip;
        using (Tensor.NoGrad())
            flip = Trainer.Logits(model, images, [3, 1, 8, 8], "flip").ToArray();
        for (int i = 0; i < flip.Length; i++)
        {
            // One rounding of the sum (the halving is exact): half an ulp of |a + b| / 2.
            double exact = ((double)plain[i] + mirrored[i]) / 2;
            Assert.True(Math.Abs(flip[i] - exact) <= Math.Abs(exact) * Math.Pow(2, -24) + 1e-30, $"logit {i}: {flip[i]} vs {exact}");
        }
        // The mirror really was taken: the model is not mirror-symmetric, so the flip changes the logits.
        Assert.Contains(Enumerable.Range(0, plain.Length), i => Math.Abs(plain[i] - flip[i]) > 1e-4);

        // An image that is its own mirror is judged exactly as without the flip.
        var symmetric = images.ToArray();
        for (int i = 0; i < symmetric.Length; i++) symmetric[i] = images[i - i % 8 + Math.Min(i % 8, 7 - i % 8)];
        float[] symmetricFlip;
        using (Tensor.NoGrad())
            symmetricFlip = Trainer.Logits(model, symmetric, [3, 1, 8, 8], "flip").ToArray();
        Assert.Equal(Forward(model, symmetric, 3), symmetricFlip);
        Assert.Throws<ArgumentException>(() => Trainer.Logits(model, images, [3, 1, 8, 8], "rotate"));
    }

    [Fact]
    public void EvaluateWithFlipScoresTheMeanLogitsOfEveryImage()
    {
        // 7 images in ragged batches of 3; expectations computed image by image in float64.
        const int count = 7;
        var rng = new Random(3);
        var pixels = new byte[count * 64];
        rng.NextBytes(pixels);
        var labels = Enumerable.Range(0, count).Select(i => (byte)(i % 3)).ToArray();
        var data = new ImageDataset("tiny", count, 1, 8, 8, pixels, labels, ["a", "b", "c"], [0.4f], [0.3f]);
        var model = Model(seed: 2);
        model.Eval();

        // The loader's normalisation, pixel·scale + bias in float32, so the inputs are the loader's bit for bit.
        var (scale, bias) = SampleTransforms.NormalisationFor([0.4f], [0.3f], normalise: true);
        double lossSum = 0;
        int correct = 0;
        for (int n = 0; n < count; n++)
        {
            var image = pixels.AsSpan(n * 64, 64).ToArray().Select(v => v * scale[0] + bias[0]).ToArray();
            float[] a = Forward(model, image, 1), b = Forward(model, Mirrored(image), 1);
            var mean = a.Zip(b, (x, y) => ((double)x + y) / 2).ToArray();
            double max = mean.Max(), logSum = max + Math.Log(mean.Sum(v => Math.Exp(v - max)));
            lossSum += logSum - mean[labels[n]];
            if (Array.IndexOf(mean, max) == labels[n]) correct++;
        }

        using var loader = new DataLoader(data, DataLoaderOptions.ForEvaluation(3));
        var (loss, accuracy) = Trainer.Evaluate(model, loader, tta: "flip");
        Assert.Equal((double)correct / count, accuracy, tolerance: 1e-7); // a float32 ratio: half an ulp of a number ≤ 1 is ≤ 6e-8
        // The evaluation computes in float32: logits from batches of 3 (which may round a few ulps
        // apart from these batches of 1), their mean, a log-sum-exp over 3 classes and sums over 7
        // images: some tens of roundings of at most 2^-24 relative to numbers of the loss's size
        // (logits here are O(1)). 1e-5 of the loss is about ten times that.
        double expected = lossSum / count;
        Assert.True(Math.Abs(loss - expected) <= 1e-5 * expected, $"loss {loss} against {expected} computed in float64");
        // And it is not the evaluation without the flip.
        using var plainLoader = new DataLoader(data, DataLoaderOptions.ForEvaluation(3));
        Assert.NotEqual(loss, Trainer.Evaluate(model, plainLoader).Loss);
    }
}
