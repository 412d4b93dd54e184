using ViTScratch.Engine;
using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>Helpers for model-level tests, which run on the CPU backend.</summary>
public abstract class ModelTestBase : IDisposable
{
    protected readonly Device Dev = Device.Create("cpu");
    protected readonly Random Rng = new(20240611);

    /// <summary>A tiny model: 8×8 images, 4×4 patches (4 tokens + cls), two layers.</summary>
    protected static ViTConfig TinyConfig(Pooling pool = Pooling.Cls, float dropout = 0f, float embDropout = 0f) =>
        new(ImageSize: 8, PatchSize: 4, NumClasses: 10, Dim: 8, Depth: 2, Heads: 2, MlpDim: 16,
            Pool: pool, Channels: 3, DimHead: 4, Dropout: dropout, EmbDropout: embDropout);

    /// <summary>Images with values uniform in [-1, 1].</summary>
    protected float[] RandomValues(int n, double scale = 1.0)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)((Rng.NextDouble() * 2 - 1) * scale);
        return v;
    }

    protected Tensor RandomImages(ViTConfig c, int batch) =>
        Tensor.FromArray(Dev, RandomValues(batch * c.Channels * c.ImageSize * c.ImageSize), batch, c.Channels, c.ImageSize, c.ImageSize);

    protected Tensor RandomLabels(int batch, int classes)
    {
        var v = new float[batch];
        for (int i = 0; i < batch; i++) v[i] = Rng.Next(classes);
        return Tensor.FromArray(Dev, v, batch);
    }

    /// <summary>Logits of an inference forward pass, copied to the host.</summary>
    protected static float[] Logits(ViT vit, Tensor images)
    {
        using var scope = new TensorScope();
        using var noGrad = Tensor.NoGrad();
        return vit.Forward(images).ToArray();
    }

    public virtual void Dispose() => Dev.Dispose();
}
