using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Training;
using ViTScratch.Training.Optim;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Model;

/// <summary>
/// A small but real training checkpoint in memory (a two-layer model after two AdamW steps, so
/// the moments are not zero), and ways to edit it: the starting point of the checkpoint
/// validation tests and of the fuzz test.
/// </summary>
internal static class CheckpointFixture
{
    /// <summary>8×8×3 images, 4×4 patches, two layers of width 8: 1,810 parameters.</summary>
    public static readonly ViTConfig Config =
        new(ImageSize: 8, PatchSize: 4, NumClasses: 10, Dim: 8, Depth: 2, Heads: 2, MlpDim: 16, Channels: 3, DimHead: 4, Dropout: 0.1f);

    public static readonly TrainingPosition Position = new(Epoch: 1, Batch: 2, Step: 2, LossSum: 9.25, Correct: 3, Seen: 8, Seconds: 0.5);

    public static AdamW Optimizer(ViT model) =>
        new(OptimParam.From(model));

    /// <summary>The bytes of a training checkpoint as TrainingCheckpoint.Save writes it.</summary>
    public static byte[] TrainingCheckpointBytes(Device device)
    {
        var model = new ViT(Config, device, seed: 5);
        var optimizer = Optimizer(model);
        var rng = new Random(7);
        for (int step = 0; step < Position.Step; step++)
        {
            using var scope = new TensorScope();
            var images = Tensor.FromArray(device, Enumerable.Range(0, 4 * 3 * 8 * 8).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray(), 4, 3, 8, 8);
            var labels = Tensor.FromArray(device, [1f, 2f, 3f, 4f], 4);
            Ops.Mean(Ops.CrossEntropy(model.Forward(images), labels)).Backward();
            optimizer.Step(1e-2f);
            optimizer.ZeroGrad();
        }
        string dir = Directory.CreateTempSubdirectory("vit-fixture-").FullName;
        try
        {
            string path = Path.Combine(dir, "last.safetensors");
            TrainingCheckpoint.Save(path, model, optimizer, new TrainOptions { Epochs = 3, BatchSize = 4 }, Position);
            return File.ReadAllBytes(path);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The file with its metadata and tensors edited, written back as a valid safetensors file.</summary>
    public static byte[] Edit(byte[] bytes, Action<Dictionary<string, string>>? metadata = null, Func<SafeTensor, SafeTensor>? tensor = null)
    {
        var file = SafeTensors.Parse(bytes);
        var meta = new Dictionary<string, string>(file.Metadata);
        metadata?.Invoke(meta);
        var tensors = file.Tensors.Select(t => tensor is null ? t : tensor(t)).ToList();
        return SafeTensors.Serialize(tensors, meta);
    }

    /// <summary>The file with one value of tensor <paramref name="name"/> replaced.</summary>
    public static byte[] WithValue(byte[] bytes, string name, int index, float value) =>
        Edit(bytes, tensor: t =>
        {
            if (t.Name != name) return t;
            var data = (float[])t.Data.Clone();
            data[index] = value;
            return t with { Data = data };
        });

    /// <summary>The file saved from a model of another config, with the metadata of <see cref="Config"/> put back.</summary>
    public static byte[] WeightsOf(ViTConfig config, Device device, IReadOnlyDictionary<string, string> metadata)
    {
        var other = new ViT(config, device, seed: 1);
        return SafeTensors.Serialize(other.StateDict(), metadata);
    }

    /// <summary>Bytes the current thread allocates while <paramref name="action"/> runs (arrays of every size included).</summary>
    public static long AllocatedBy(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
