using System.CommandLine;
using ViTScratch.Engine;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>`vit eval --checkpoint FILE`: test loss and accuracy of a saved model.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var checkpoint = Flags.Text("--checkpoint", "the checkpoint to evaluate: best.safetensors or last.safetensors of a run (required)", "FILE");
        var dataset = Flags.Text("--dataset", "evaluate on this dataset's test split instead of the run's (a warning says when it differs)", "NAME");
        dataset.CompletionSources.Add(TrainOptions.Choices[nameof(TrainOptions.Dataset)].ToArray());
        var data = Flags.Text("--data", "where the test data is, instead of the directory the checkpoint records (checked against its fingerprint)", "DIR");
        var download = Flags.Switch("--download", "with --data: download the dataset into DIR when it is not there");
        var device = Flags.Device();
        var precision = Flags.Precision();
        var batch = Flags.Int("--batch", "images per forward", TrainOptions.Limits[nameof(TrainOptions.BatchSize)], fallback: 256);
        var limit = Flags.Int("--limit", "evaluate only the first N test images (0 = all)", TrainOptions.Limits[nameof(TrainOptions.TestLimit)]);
        var tta = Flags.Tta();
        var command = new Command("eval", Description) { checkpoint, dataset, data, download, device, precision, batch, limit, tta };
        command.SetAction(r => Run(r.Required(checkpoint, "eval", "the .safetensors file to evaluate"), r.GetValue(dataset), r.GetValue(data),
            r.GetValue(download), r.GetValue(device)!, r.GetValue(precision)!, r.GetValue(batch),
            r.GetValue(limit), r.GetValue(tta), r.InvocationConfiguration.Output));
        return command;
    }

    private const string Description =
        "evaluate a checkpoint on a test set: by default the test split the checkpoint was trained beside, " +
        "from the directory it records and checked against its fingerprint; --data (or --dataset) evaluates " +
        "on other data on purpose, with a warning when it differs.";

    private static int Run(string path, string? datasetFlag, string? dataDir, bool download, string deviceName, string precision, int batch, int limit,
        string? ttaFlag, TextWriter stdout)
    {
        var file = TrainingCheckpoint.Read(path);
        string tta = ttaFlag ?? TtaOf(file, path);
        using var device = Device.Create(deviceName);
        device.Kernels.Precision = TrainOptions.MathPrecisionOf(precision);
        var model = TrainingCheckpoint.LoadModel(file, path, device);
        var test = LoadTestSplit(file, path, datasetFlag, dataDir, download, stdout);
        string dataset = test.Name;
        if (limit > 0 && limit < test.Count) test = test.Take(limit);
        using var loader = new DataLoader(test, DataLoaderOptions.ForEvaluation(batch));
        var perClass = new PerClassCounts(test.ClassCount);
        var (loss, acc) = Trainer.Evaluate(model, loader, perClass: perClass, tta: tta);
        stdout.WriteLine($"{dataset} test set ({test.Count} images{(tta == "flip" ? ", each averaged with its mirror image (--tta flip)" : "")}): " +
                         $"loss {loss:F4}, accuracy {acc * 100:F2}%");
        // Per class, by name, where a table of them is still readable.
        if (test.ClassCount <= 30)
        {
            int width = test.ClassNames.Max(n => n.Length);
            for (int c = 0; c < test.ClassCount; c++)
                if (perClass.Total[c] > 0)
                    stdout.WriteLine($"  {test.ClassNames[c].PadRight(width)}  {100.0 * perClass.Correct[c] / perClass.Total[c],6:F2}%  of {perClass.Total[c]}");
        }
        return 0;
    }

    /// <summary>
    /// The test split a checkpoint is judged on: by default the one it was trained beside (the
    /// dataset and absolute directory its data record names, checked against the fingerprint);
    /// an explicit --dataset or --data picks other data on purpose, with a warning if it differs.
    /// </summary>
    internal static ImageDataset LoadTestSplit(Model.Checkpoints.SafeTensorsFile file, string path, string? datasetFlag, string? dataDirFlag,
        bool download, TextWriter log)
    {
        var recorded = DataProvenance.FromMetadata(file.Metadata, path);
        string dataset = datasetFlag ?? recorded?.Dataset ?? DatasetOf(file, path);
        if (datasetFlag is not null && recorded is not null && DatasetCatalog.CanonicalName(datasetFlag) == recorded.Dataset)
            datasetFlag = null; // --dataset naming the run's own dataset changes nothing
        bool explicitData = dataDirFlag is not null || datasetFlag is not null;
        string? recordedDir = string.IsNullOrEmpty(recorded?.Path) ? DataDirOf(file, path) : recorded.Path;
        string? dir = dataDirFlag ?? (datasetFlag is null ? recordedDir : null);
        ImageDataset test;
        try
        {
            if (DatasetCatalog.CanonicalName(dataset) == ImageFolder.Name)
            {
                // An image folder is decoded as the model was trained: its size, channels,
                // normalisation and class order, from the checkpoint.
                var d = DataDescription.FromMetadata(file.Metadata, path)
                    ?? throw new ViTScratchException($"checkpoint '{path}' does not describe its image folder's classes; it cannot be evaluated on one");
                var fo = new FolderOptions { ImageSize = d.ImageSize, Channels = d.Channels, Mean = d.Mean, Std = d.Std, Log = log };
                test = ImageFolder.Load(dir ?? throw new ViTScratchException("--data DIR is needed: the folder that holds test/"), "test", fo, d.ClassNames)
                       ?? throw new ViTScratchException($"'{dir}' has no test/ folder of class folders to evaluate on");
            }
            else test = DatasetCatalog.Load(dataset, dir, train: false, new DatasetOptions { DownloadIntoDataDir = download });
        }
        catch (ViTScratchException e) when (!explicitData && recorded is not null)
        {
            throw new ViTScratchException($"the data '{path}' was trained on is no longer where it records it ({e.Message}); " +
                "pass --data DIR to evaluate on a copy elsewhere (it is checked against the recorded fingerprint)", e);
        }
        if (recorded is not null)
            recorded.Check(test, train: false, retargeted: explicitData, path, log);
        return test;
    }

    internal static string DatasetOf(Model.Checkpoints.SafeTensorsFile file, string path) =>
        file.Metadata.ContainsKey("train_options")
            ? TrainingCheckpoint.ReadOptions(file, path).Dataset
            : throw new ViTScratchException($"checkpoint '{path}' does not say which dataset it was trained on; pass --dataset");

    /// <summary>The test-time augmentation a checkpoint's run was validated with ("none" for weights-only files and runs before --tta).</summary>
    /// <remarks>
    /// Reads that one field, not the whole options: a checkpoint whose other options today's rules
    /// would refuse (it cannot be resumed) can still be evaluated, predicted with and exported.
    /// </remarks>
    internal static string TtaOf(Model.Checkpoints.SafeTensorsFile file, string path)
    {
        if (!file.Metadata.TryGetValue("train_options", out var json)) return "none";
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
                && doc.RootElement.TryGetProperty(nameof(TrainOptions.Tta), out var tta) && tta.ValueKind == System.Text.Json.JsonValueKind.String)
            {
                string value = tta.GetString()!;
                return TrainOptions.Choices[nameof(TrainOptions.Tta)].Contains(value) ? value
                    : throw new ViTScratchException($"checkpoint '{path}' records test-time augmentation '{ViTScratchException.Printable(value)}', " +
                                                    "which this version does not know; give --tta none or --tta flip");
            }
            return "none";
        }
        catch (System.Text.Json.JsonException)
        {
            return "none"; // unreadable options: the other readers of the file name that problem when it matters
        }
    }

    internal static string? DataDirOf(Model.Checkpoints.SafeTensorsFile file, string path) =>
        file.Metadata.ContainsKey("train_options") ? TrainingCheckpoint.ReadOptions(file, path).DataDir : null;
}
