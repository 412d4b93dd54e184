using ViTScratch.Engine;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Data;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training.Commands;

/// <summary>`vit eval --checkpoint FILE`: test loss and accuracy of a saved model.</summary>
public static class EvalCommand
{
    public const string Help = """
        vit eval --checkpoint FILE [--dataset NAME] [--data DIR] [--device NAME] [--batch N] [--limit N]
          evaluates a checkpoint (best.safetensors or last.safetensors of a run) on a test set;
          the dataset defaults to the one the checkpoint was trained on.
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new ArgParser("eval", args);
        string path = a.Required("checkpoint", "the .safetensors file to evaluate");
        string? datasetFlag = a.Optional("dataset");
        string? dataDir = a.Optional("data");
        string deviceName = a.Choice("device", "auto", "auto", "cpu", "cuda", "ilgpu-cpu");
        int batch = a.Int("batch", 256, 1, 65_536);
        int limit = a.Int("limit", 0, 0, int.MaxValue);
        a.RejectUnknown();

        var file = TrainingCheckpoint.Read(path);
        string dataset = datasetFlag ?? DatasetOf(file, path);
        using var device = Device.Create(deviceName);
        var model = TrainingCheckpoint.LoadModel(file, path, device);
        var test = DatasetCatalog.Load(dataset, dataDir ?? DataDirOf(file, path), train: false);
        if (limit > 0 && limit < test.Count) test = test.Take(limit);
        using var loader = new DataLoader(test, DataLoaderOptions.ForEvaluation(batch));
        var (loss, acc) = Trainer.Evaluate(model, loader);
        stdout.WriteLine($"{dataset} test set ({test.Count} images): loss {loss:F4}, accuracy {acc * 100:F2}%");
        return 0;
    }

    internal static string DatasetOf(Model.Checkpoints.SafeTensorsFile file, string path) =>
        file.Metadata.ContainsKey("train_options")
            ? TrainingCheckpoint.ReadOptions(file, path).Dataset
            : throw new ViTScratchException($"checkpoint '{path}' does not say which dataset it was trained on; pass --dataset");

    internal static string? DataDirOf(Model.Checkpoints.SafeTensorsFile file, string path) =>
        file.Metadata.ContainsKey("train_options") ? TrainingCheckpoint.ReadOptions(file, path).DataDir : null;
}
