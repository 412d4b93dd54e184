using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Training.Optim;

namespace ViTScratch.Tests.Training;

/// <summary>
/// The library surface a new user meets (issue 19, item 3): integer labels and an explicit
/// reduction for the loss, typed gradients, optimizers built from a model without invalidating
/// anything the user holds, deterministic release of tensors, presets with a patch size.
/// </summary>
public class PublicApiTests : IDisposable
{
    private readonly Device _dev = Device.Create("cpu");

    private Tensor Logits() => Tensor.FromArray(_dev, [2f, -1f, 0.5f, 0f, 3f, -2f, 1f, 1f, -0.5f, 0.25f, 0.75f, -1.5f], 4, 3);

    [Fact]
    public void CrossEntropyWithIntegerLabelsReducesAsAsked()
    {
        int[] labels = [0, 1, 2, 1];
        // By hand: loss_i = logsumexp(row_i) − row_i[label_i].
        float[] rows = [2f, -1f, 0.5f, 0f, 3f, -2f, 1f, 1f, -0.5f, 0.25f, 0.75f, -1.5f];
        var expected = new double[4];
        for (int i = 0; i < 4; i++)
        {
            double lse = Math.Log(Enumerable.Range(0, 3).Sum(c => Math.Exp(rows[i * 3 + c])));
            expected[i] = lse - rows[i * 3 + labels[i]];
        }
        var none = Ops.CrossEntropy(Logits(), labels, reduction: Reduction.None).ToArray();
        Assert.Equal(4, none.Length);
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], none[i], 5);
        Assert.Equal(expected.Average(), Ops.CrossEntropy(Logits(), labels).Item(), 5); // mean is the default
        Assert.Equal(expected.Sum(), Ops.CrossEntropy(Logits(), labels, reduction: Reduction.Sum).Item(), 5);
    }

    [Fact]
    public void CrossEntropyRefusesLabelsThatAreNotClasses()
    {
        Assert.Contains("label 3 at index 1", Assert.Throws<ViTScratchException>(() => Ops.CrossEntropy(Logits(), [0, 3, 1, 1])).Message);
        Assert.Contains("label -1", Assert.Throws<ViTScratchException>(() => Ops.CrossEntropy(Logits(), [0, 1, 1, -1])).Message);
        Assert.Contains("3 labels", Assert.Throws<ViTScratchException>(() => Ops.CrossEntropy(Logits(), [0, 1, 1])).Message);
    }

    [Fact]
    public void GradientsAreReadAndWrittenThroughTheTensor()
    {
        var w = Tensor.FromArray(_dev, [1f, 2f, 3f], 3);
        w.RequiresGrad = true;
        Assert.False(w.HasGrad);
        Assert.Throws<InvalidOperationException>(() => w.GradToArray());
        w.SetGrad([0.5f, -1f, 2f]);
        Assert.True(w.HasGrad);
        Assert.Equal([0.5f, -1f, 2f], w.GradToArray());
        // The optimizer steps on the gradient set by hand: plain SGD, p ← p − lr·g.
        var sgd = new Sgd([new OptimParam("w", w, Decay: false)], momentum: 0f);
        Assert.Equal([0.5f, -1f, 2f], w.GradToArray()); // kept through the move into the optimizer's buffers
        sgd.Step(0.1f);
        var p = w.ToArray();
        Assert.Equal(0.95f, p[0], 6); Assert.Equal(2.1f, p[1], 6); Assert.Equal(2.8f, p[2], 6);
        Assert.Throws<ViTScratchException>(() => w.SetGrad([1f]));
    }

    [Fact]
    public void AnOptimizerBuiltFromAModelKeepsEveryParameterUsableAndRefusesASecondOne()
    {
        var model = new ViT(ViTPresets.Create("vit-micro", 1, 8, 8, 3, patchSize: 4) with { Dim = 16, Depth = 1, Heads = 2, DimHead = 8, MlpDim = 16 }, _dev, seed: 1);
        var before = model.NamedParameters().Select(p => p.Parameter.Value.ToArray()).ToList();
        var parameters = OptimParam.From(model);
        Assert.Equal(model.NamedParameters().Select(p => p.Name), parameters.Select(p => p.Name));
        Assert.Equal(model.NamedParameters().Select(p => p.Parameter.WeightDecay), parameters.Select(p => p.Decay));
        Assert.Contains(parameters, p => !p.Decay);
        var adamw = new AdamW(parameters);
        var after = model.NamedParameters().Select(p => p.Parameter.Value.ToArray()).ToList();
        Assert.Equal(before, after); // the same tensors, the same values, now in the optimizer's buffers
        var e = Assert.Throws<ViTScratchException>(() => new AdamW(OptimParam.From(model)));
        Assert.Contains("already belongs to an optimizer", e.Message);
        GC.KeepAlive(adamw);
    }

    [Fact]
    public void ADisposedTensorIsReleasedAndCannotBeRead()
    {
        var t = Tensor.FromArray(_dev, [1f, 2f], 2);
        t.Dispose();
        Assert.Throws<ObjectDisposedException>(() => t.ToArray());
        t.Dispose(); // twice is harmless

        using (new TensorScope())
        {
            var pooled = Ops.Scale(Tensor.Input(_dev, [1f, 2f], 2), 2f);
            pooled.Dispose(); // early, inside its scope; the scope's end then skips it
            Assert.Throws<ObjectDisposedException>(() => pooled.ToArray());
        }
    }

    [Fact]
    public void PresetsTakeAPatchSize()
    {
        Assert.Equal(4, ViTPresets.Create("vit-micro", 3, 32, 32, 10).PatchSize);
        var c = ViTPresets.Create("vit-micro", 3, 32, 32, 10, patchSize: 8);
        Assert.Equal(8, c.PatchSize);
        Assert.Equal(16, c.NumPatches);
        Assert.Throws<ViTScratchException>(() => ViTPresets.Create("vit-micro", 3, 32, 32, 10, patchSize: 5)); // 32 is not a multiple of 5
    }

    [Fact]
    public void ClassifyIsTheArgMaxOfTheLogitsInEvaluationMode()
    {
        var model = new ViT(ViTPresets.Create("vit-micro", 1, 8, 8, 5, patchSize: 4, dropout: 0.5f) with { Dim = 16, Depth = 1, Heads = 2, DimHead = 8, MlpDim = 16 }, _dev, seed: 2);
        var rng = new Random(3);
        var images = Tensor.FromArray(_dev, Enumerable.Range(0, 3 * 64).Select(_ => (float)rng.NextDouble()).ToArray(), 3, 1, 8, 8);
        int[] classes = model.Classify(images);
        Assert.True(model.Training); // the mode it had
        model.Eval();
        float[] logits;
        using (Tensor.NoGrad()) logits = model.Forward(images).ToArray();
        for (int b = 0; b < 3; b++)
        {
            var row = logits.AsSpan(b * 5, 5).ToArray();
            Assert.Equal(Array.IndexOf(row, row.Max()), classes[b]);
        }
    }

    public void Dispose() => _dev.Dispose();
}
