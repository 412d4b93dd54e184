using System.CommandLine;
using SkiaSharp;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Imaging;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>
/// `vit predict`: the top-5 classes of one image (a PNG/JPEG file, or an index into the test set),
/// and optionally the attention rollout (Abnar and Zuidema, 2020) drawn over the image.
/// </summary>
public static class PredictCommand
{
    public static Command Create()
    {
        var checkpoint = Flags.Text("--checkpoint", "the .safetensors file of a trained model (required)", "FILE");
        var image = new Argument<string>("IMAGE")
        {
            Arity = ArgumentArity.ZeroOrOne,
            Description = "a PNG, JPEG or BMP file, resized to the model's input size (and made grey for 1-channel models); or give --index",
        };
        var index = Flags.Int("--index", "take test image N of the dataset the checkpoint was trained on, instead of an image file",
            new OptionLimit("index", 0, int.MaxValue));
        var map = Flags.Text("--attention-map", "write the attention rollout drawn over the image to this PNG", "OUT.png");
        var data = Flags.Text("--data", "where the test data is (with --index), instead of the directory the checkpoint records", "DIR");
        var device = Flags.Device();
        var maxPixels = Flags.Long("--max-pixels", "refuse larger images before decoding them",
            new OptionLimit("max-pixels", 1, long.MaxValue), fallback: ImageFiles.DefaultMaxPixels);
        var tta = Flags.Tta();
        var command = new Command("predict", "the top-5 classes of an image file or a test-set image (--index N), and optionally its attention map")
            { image, checkpoint, index, map, data, device, maxPixels, tta };
        command.SetAction(r => Run(r.Required(checkpoint, "predict", "the .safetensors file of a trained model"), r.GetValue(image),
            r.Given(index) ? r.GetValue(index) : null, r.GetValue(map), r.GetValue(data), r.GetValue(device)!, r.GetValue(maxPixels),
            r.GetValue(tta), r.InvocationConfiguration.Output));
        return command;
    }

    private static int Run(string path, string? imagePath, int? index, string? mapPath, string? dataDir, string deviceName, long maxPixels,
        string? ttaFlag, TextWriter stdout)
    {
        if ((index is null) == (imagePath is null))
            throw new ViTScratchException("vit predict: give either an image file or --index N (one of them)");

        var file = TrainingCheckpoint.Read(path);
        string tta = ttaFlag ?? EvalCommand.TtaOf(file, path);
        using var device = Device.Create(deviceName);
        var model = TrainingCheckpoint.LoadModel(file, path, device);
        var cfg = model.Config;
        // Class names and normalisation from the checkpoint (any dataset, image folders too); older
        // checkpoints fall back to the built-in dataset they name.
        var info = DataDescription.FromMetadata(file.Metadata, path) ?? DataDescription.Of(DatasetCatalog.Info(EvalCommand.DatasetOf(file, path)));
        if (info.Channels != cfg.Channels || info.ImageSize != cfg.ImageSize || info.ClassNames.Length != cfg.NumClasses)
            throw new ViTScratchException($"checkpoint '{path}' expects {cfg.ImageSize}x{cfg.ImageSize}x{cfg.Channels} images and {cfg.NumClasses} classes " +
                $"but its data ({info.Dataset}) has {info.ImageSize}x{info.ImageSize}x{info.Channels} and {info.ClassNames.Length}; the file is inconsistent");

        byte[] pixels; // CHW, uint8
        string what;
        if (index is int n)
        {
            var test = EvalCommand.LoadTestSplit(file, path, null, dataDir, download: false, stdout);
            if (n >= test.Count) throw new ViTScratchException($"vit predict: --index {n} is past the end of the {test.Count}-image test set");
            pixels = test.Image(n).ToArray();
            what = $"test image {n} (label: {test.ClassNames[test.Labels[n]]})";
        }
        else
        {
            what = imagePath!;
            pixels = ImageFiles.LoadChw(what, cfg.Channels, cfg.ImageSize, maxPixels);
        }

        var input = new float[pixels.Length];
        int plane = cfg.ImageSize * cfg.ImageSize;
        for (int i = 0; i < input.Length; i++)
        {
            int ch = i / plane;
            input[i] = (pixels[i] / 255f - info.Mean[ch]) / info.Std[ch];
        }

        model.Eval();
        model.CaptureAttention = mapPath is not null;
        float[] logits;
        // The attention maps are the last forward's: Trainer.Logits runs the image itself last.
        using (Tensor.NoGrad())
            logits = Trainer.Logits(model, input, [1, cfg.Channels, cfg.ImageSize, cfg.ImageSize], tta).ToArray();

        var probs = Softmax(logits);
        stdout.WriteLine(tta == "flip" ? $"{what} (averaged with its mirror image, --tta flip):" : $"{what}:");
        foreach (var (p, c) in probs.Select((p, c) => (p, c)).OrderByDescending(t => t.p).Take(5))
            stdout.WriteLine($"  {p * 100,6:F2}%  {info.ClassNames[c]}");

        if (mapPath is not null)
        {
            var rollout = AttentionRollout.Compute(model.AttentionMaps, cfg.Pool == Pooling.Cls);
            AttentionMapImage.SaveHeatmap(mapPath, pixels, cfg.Channels, cfg.ImageSize, rollout, cfg.ImageSize / cfg.PatchSize);
            stdout.WriteLine($"attention rollout written to {mapPath}");
        }
        return 0;
    }

    private static double[] Softmax(float[] z)
    {
        double max = z.Max();
        var e = z.Select(v => Math.Exp(v - max)).ToArray();
        double s = e.Sum();
        return e.Select(v => v / s).ToArray();
    }
}

/// <summary>
/// Attention rollout: average each layer's weights over heads, add the identity for the residual
/// path, renormalise rows, and multiply the layers together; the row of the cls token (or the
/// mean of all rows for mean pooling) says how much each patch reached the output.
/// </summary>
public static class AttentionRollout
{
    public static double[] Compute(IReadOnlyList<AttentionMap> layers, bool clsPooling)
    {
        int heads = layers[0].Shape[1], n = layers[0].Shape[2];
        var rollout = Identity(n);
        foreach (var layer in layers)
        {
            var a = new double[n, n];
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                        a[i, j] += layer.Weights[(h * n + i) * n + j] / heads;
            for (int i = 0; i < n; i++)
            {
                a[i, i] += 1;
                double s = 0;
                for (int j = 0; j < n; j++) s += a[i, j];
                for (int j = 0; j < n; j++) a[i, j] /= s;
            }
            rollout = Multiply(a, rollout);
        }
        var patches = new double[n - 1];
        for (int j = 1; j < n; j++)
        {
            if (clsPooling) patches[j - 1] = rollout[0, j];
            else { for (int i = 0; i < n; i++) patches[j - 1] += rollout[i, j] / n; }
        }
        double max = patches.Max(), min = patches.Min();
        return patches.Select(v => max > min ? (v - min) / (max - min) : 0).ToArray();
    }

    private static double[,] Identity(int n)
    {
        var m = new double[n, n];
        for (int i = 0; i < n; i++) m[i, i] = 1;
        return m;
    }

    private static double[,] Multiply(double[,] a, double[,] b)
    {
        int n = a.GetLength(0);
        var c = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++)
                for (int j = 0; j < n; j++)
                    c[i, j] += a[i, k] * b[k, j];
        return c;
    }
}

/// <summary>`vit predict --attention-map`: the image beside the attention heat map, as a PNG (SkiaSharp).</summary>
public static class AttentionMapImage
{
    /// <summary>Writes the image (scaled up) with the patch heat map blended over it, as a PNG.</summary>
    public static void SaveHeatmap(string path, byte[] chw, int channels, int size, double[] heat, int grid)
    {
        const int Scale = 8;
        int outSize = size * Scale;
        using var bmp = new SKBitmap(outSize * 2, outSize);
        for (int y = 0; y < outSize; y++)
            for (int x = 0; x < outSize; x++)
            {
                int sx = x / Scale, sy = y / Scale;
                byte r = chw[sy * size + sx];
                byte g = channels == 3 ? chw[size * size + sy * size + sx] : r;
                byte b = channels == 3 ? chw[2 * size * size + sy * size + sx] : r;
                bmp.SetPixel(x, y, new SKColor(r, g, b));
                double h = heat[(sy * grid / size) * grid + sx * grid / size];
                var (hr, hg, hb) = Inferno(h);
                bmp.SetPixel(outSize + x, y, new SKColor((byte)(0.45 * r + 0.55 * hr), (byte)(0.45 * g + 0.55 * hg), (byte)(0.45 * b + 0.55 * hb)));
            }
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.Write(path, s => data.SaveTo(s));
    }

    // A small dark-to-bright colour ramp (black → purple → orange → yellow).
    private static (double, double, double) Inferno(double t)
    {
        t = Math.Clamp(t, 0, 1);
        return (255 * Math.Min(1, 1.6 * t), 255 * Math.Clamp(1.8 * t - 0.6, 0, 1), 255 * Math.Clamp(t < 0.5 ? 1.2 * t : 1.6 - 1.6 * t, 0, 1));
    }
}
