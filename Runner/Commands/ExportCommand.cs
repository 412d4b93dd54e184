using System.CommandLine;
using ViTScratch.Engine;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Onnx;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>`vit export --checkpoint FILE --out MODEL.onnx`: the model as an ONNX file (see <see cref="OnnxExporter"/>).</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = Flags.Text("--checkpoint", "the .safetensors file to export (required)", "FILE");
        var output = Flags.Text("--out", "the .onnx file to write (required); an existing one is kept unless --force", "MODEL.onnx");
        var force = Flags.Switch("--force", "replace an existing --out");
        var dataset = Flags.Text("--dataset", "the dataset of a weights-only file that does not record it", "NAME");
        dataset.CompletionSources.Add(TrainOptions.Choices[nameof(TrainOptions.Dataset)].ToArray());
        var tta = Flags.Tta();
        var command = new Command("export", Description) { checkpoint, output, force, dataset, tta };
        command.SetAction(r => Run(r.Required(checkpoint, "export", "the .safetensors file to export"), r.Required(output, "export", "the .onnx file to write"),
            r.GetValue(force), r.GetValue(dataset), r.GetValue(tta), r.InvocationConfiguration.Output));
        return command;
    }

    private const string Description =
        "write a checkpoint's model as an ONNX graph (opset 17) for ONNX Runtime and other runtimes: input " +
        "\"images\" [batch, C, H, W] float32, normalised as the metadata's normalization says; output " +
        "\"logits\" [batch, classes]; the batch size is free. Class names, normalisation mean/std and the " +
        "model config are in the file's metadata_props. A run validated with --tta flip exports a graph that averages " +
        "each image with its mirror image, as `vit eval` judged it (--tta none: the plain model).";

    private static int Run(string path, string outPath, bool force, string? datasetFlag, string? ttaFlag, TextWriter stdout)
    {
        // Checked before the (slower) load, so a mistyped --out fails at once.
        if (Directory.Exists(outPath))
            throw new ViTScratchException($"vit export: --out '{outPath}' is a directory; give a file name such as '{Path.Combine(outPath, "model.onnx")}'");
        if (File.Exists(outPath) && !force)
            throw new ViTScratchException($"vit export: '{outPath}' already exists; pass --force to replace it or choose another --out");

        var file = TrainingCheckpoint.Read(path);
        using var device = Device.Create("cpu");
        var model = TrainingCheckpoint.LoadModel(file, path, device);
        var cfg = model.Config;
        var info = DataOf(file, path, datasetFlag);
        if (info.Channels != cfg.Channels || info.ImageSize != cfg.ImageSize || info.ClassNames.Length != cfg.NumClasses)
            throw new ViTScratchException($"checkpoint '{path}' takes {cfg.ImageSize}x{cfg.ImageSize}x{cfg.Channels} images and has {cfg.NumClasses} classes, " +
                $"but dataset {info.Dataset} has {info.ImageSize}x{info.ImageSize}x{info.Channels} images and {info.ClassNames.Length} classes; pass the --dataset it was trained on");

        string tta = ttaFlag ?? EvalCommand.TtaOf(file, path);
        var proto = OnnxExporter.Export(model, new OnnxModelInfo(info.ClassNames, info.Mean, info.Std, info.Dataset) { TestTimeAugmentation = tta });
        AtomicFile.Write(outPath, s => OnnxExporter.Write(proto, s));
        long bytes = new FileInfo(outPath).Length;
        stdout.WriteLine($"wrote {outPath} ({bytes / 1e6:F1} MB, ONNX opset {OnnxExporter.Opset}): {OnnxExporter.InputName} [batch, {cfg.Channels}, {cfg.ImageSize}, {cfg.ImageSize}] " +
                         $"-> {OnnxExporter.OutputName} [batch, {cfg.NumClasses}], {cfg.Depth} layers, {ViTScratch.Model.ViTConfig.PoolName(cfg.Pool)} pooling" +
                         (tta == "flip" ? ", each image averaged with its mirror image (--tta flip)" : ""));
        return 0;
    }

    // The classes and normalisation of the data the model was trained on: --dataset, else what the
    // checkpoint itself describes (any dataset, an image folder's too), else the dataset its data
    // record or training options name (as `vit eval` finds it).
    private static DataDescription DataOf(SafeTensorsFile file, string path, string? datasetFlag)
    {
        if (datasetFlag is not null) return DataDescription.Of(DatasetCatalog.Info(datasetFlag));
        if (DataDescription.FromMetadata(file.Metadata, path) is { } described) return described;
        string dataset = DataProvenance.FromMetadata(file.Metadata, path)?.Dataset ?? EvalCommand.DatasetOf(file, path);
        return DataDescription.Of(DatasetCatalog.Info(dataset));
    }
}
