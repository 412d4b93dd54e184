using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ViTScratch.Engine;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Model;
using ViTScratch.Onnx;
using Tensor = ViTScratch.Engine.Tensor;

namespace ViTScratch.Benchmarks;

/// <summary>
/// CPU inference of one model, ours against ONNX Runtime running the graph `vit export` writes
/// for it: the anchor a .NET user would deploy with. Same weights, same batch of images, both
/// on all cores (ORT's intra-op threads set to the same count as our workers) and ORT's default
/// graph optimisations. Rounds alternate ours then ORT so the shared host's drift hits both;
/// each round's ratio is printed, then their median and spread.
///   dotnet run -c Release --project Benchmarks -- --onnx-vs-ours [--model vit-tiny] [--batch 128] [--rounds 15]
/// CIFAR-shaped input (3×32×32, 4×4 patches: 65 tokens), 10 classes, as `vit bench` uses.
/// </summary>
public static class OnnxVsOurs
{
    public const string Flag = "--onnx-vs-ours";

    public static void Run(string[] args)
    {
        string preset = Option(args, "--model", "vit-tiny");
        int batch = int.Parse(Option(args, "--batch", "128"), CultureInfo.InvariantCulture);
        int rounds = int.Parse(Option(args, "--rounds", "15"), CultureInfo.InvariantCulture);
        const int warmup = 2;

        using var device = Device.Create("cpu");
        var config = ViTPresets.Create(preset, 3, 32, 32, 10);
        var vit = new ViT(config, device, seed: 0);
        vit.Eval();
        var info = new OnnxModelInfo(Enumerable.Range(0, 10).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray(), [0.5f, 0.5f, 0.5f], [0.25f, 0.25f, 0.25f]);
        byte[] onnx = OnnxExporter.Export(vit, info).ToByteArray();

        using var options = new SessionOptions
        {
            IntraOpNumThreads = Par.Workers,
            InterOpNumThreads = 1,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        using var session = new InferenceSession(onnx, options);

        var rnd = new Random(1);
        var pixels = new float[batch * 3 * 32 * 32];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(rnd.NextDouble() * 2 - 1);
        var images = Tensor.FromArray(device, pixels, batch, 3, 32, 32);
        var input = new[] { NamedOnnxValue.CreateFromTensor(OnnxExporter.InputName, new DenseTensor<float>(pixels, [batch, 3, 32, 32])) };

        // Both sides end with the logits in a host array, as a caller would use them.
        float[] Ours()
        {
            using var scope = new TensorScope();
            using var noGrad = Tensor.NoGrad();
            return vit.Forward(images).ToArray();
        }
        float[] Theirs()
        {
            using var results = session.Run(input);
            return results[0].AsTensor<float>().ToArray();
        }

        float worst = Ours().Zip(Theirs(), (a, b) => MathF.Abs(a - b)).Max();
        Console.WriteLine($"{preset}, batch {batch}, CIFAR-shaped input, {Par.Workers} threads each, ONNX Runtime " +
                          $"{typeof(InferenceSession).Assembly.GetName().Version}, opset {OnnxExporter.Opset}; max |ours - ORT| logit = {worst:G3}");
        for (int w = 0; w < warmup; w++) { Ours(); Theirs(); }

        var ours = new double[rounds];
        var theirs = new double[rounds];
        var sw = new Stopwatch();
        Console.WriteLine("| round | ours ms | ORT ms | ours / ORT (img/s) |");
        Console.WriteLine("|---:|---:|---:|---:|");
        for (int r = 0; r < rounds; r++)
        {
            sw.Restart(); Ours(); ours[r] = sw.Elapsed.TotalMilliseconds;
            sw.Restart(); Theirs(); theirs[r] = sw.Elapsed.TotalMilliseconds;
            Console.WriteLine($"| {r + 1} | {ours[r]:F1} | {theirs[r]:F1} | {theirs[r] / ours[r]:F2} |");
        }
        var ratios = theirs.Zip(ours, (t, o) => t / o).Order().ToArray();
        double mo = Median(ours), mt = Median(theirs);
        Console.WriteLine();
        Console.WriteLine($"ours {batch * 1000 / mo:F1} img/s, ONNX Runtime {batch * 1000 / mt:F1} img/s (medians of {rounds} alternated rounds)");
        Console.WriteLine($"ours / ORT images per second: median {Median(ratios):F2}, quartiles {ratios[rounds / 4]:F2}-{ratios[3 * rounds / 4]:F2}, " +
                          $"range {ratios[0]:F2}-{ratios[^1]:F2}");
    }

    private static string Option(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    private static double Median(double[] x)
    {
        var s = x.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
