// Trains a tiny Vision Transformer on tensors made in memory, saves it, loads it back and
// classifies one image, with the public API of the ViTScratch packages only.
// The task: 8x8 grey images whose bright stripe is a row (class 0) or a column (class 1).
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Training.Optim;

const int Size = 8, Batch = 32, Steps = 150;
var rng = new Random(1);
using var device = Device.Create("cpu"); // "auto" picks a CUDA GPU when there is one

// A batch of images [B, 1, 8, 8] and their integer labels.
(float[] Pixels, int[] Labels) MakeBatch(int count)
{
    var pixels = new float[count * Size * Size];
    var labels = new int[count];
    for (int i = 0; i < count; i++)
    {
        labels[i] = rng.Next(2);
        int line = rng.Next(Size);
        for (int y = 0; y < Size; y++)
            for (int x = 0; x < Size; x++)
                pixels[i * Size * Size + y * Size + x] = ((labels[i] == 0 ? y : x) == line ? 1f : 0f) + 0.2f * (float)rng.NextDouble();
    }
    return (pixels, labels);
}

// vit-micro's width and depth would be far more than this task needs: a smaller one from the same preset.
var config = ViTPresets.Get("vit-micro").WithSizes(patch: 4, dim: 32, depth: 2, heads: 2, dimHead: 16, mlpDim: 64)
    .ToConfig(channels: 1, height: Size, width: Size, numClasses: 2);
var model = new ViT(config, device, seed: 0);
var optimizer = new AdamW(OptimParam.From(model), weightDecay: 0.01f);
var schedule = new LrSchedule(BaseLr: 3e-3f, WarmupSteps: 10, TotalSteps: Steps);

for (int step = 1; step <= Steps; step++)
{
    var (pixels, labels) = MakeBatch(Batch);
    using var scope = new TensorScope(); // every tensor of the step goes back to the pool at its end
    var images = Tensor.Input(device, pixels, Batch, 1, Size, Size);
    var loss = Ops.CrossEntropy(model.Forward(images), labels); // the batch mean
    loss.Backward();
    optimizer.Step(schedule.At(step));
    optimizer.ZeroGrad();
    if (step % 50 == 0) Console.WriteLine($"step {step}: loss {loss.Item():F4}");
}

string path = Path.Combine(Path.GetTempPath(), $"own-tensors-{Environment.ProcessId}.safetensors");
model.Save(path);
var loaded = ViT.Load(path, device);
File.Delete(path);

var (test, truth) = MakeBatch(200);
using var testImages = Tensor.FromArray(device, test, 200, 1, Size, Size); // outside a scope: disposed by `using`
int[] predicted = loaded.Classify(testImages);
double accuracy = predicted.Zip(truth).Count(p => p.First == p.Second) / 200.0;
Console.WriteLine($"loaded model: accuracy {accuracy:P1} on 200 new images");

var (one, oneLabel) = MakeBatch(1);
using var image = Tensor.FromArray(device, one, 1, 1, Size, Size);
Console.WriteLine($"one image: class {loaded.Classify(image)[0]} (true class {oneLabel[0]})");
return accuracy >= 0.9 ? 0 : 1;
