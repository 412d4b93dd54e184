using System.Diagnostics;

namespace ViTScratch.Tests.Samples;

/// <summary>
/// samples/TrainOwnTensors, run as the separate program it is: it trains on in-memory tensors,
/// saves, loads and classifies with the packages' public API, and exits 1 when the loaded model
/// classifies fewer than 90% of new images right.
/// </summary>
public class TrainOwnTensorsSampleTests
{
    [Fact]
    public async Task TheSampleTrainsSavesLoadsAndClassifies()
    {
        // The sample is built with the tests (a project reference that does not reference its
        // assembly) in the same configuration: bin/<Configuration>/<framework>/ of its own project.
        var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = testBin.Name, configuration = testBin.Parent!.Name;
        var root = testBin;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "ViTScratch.sln"))) root = root.Parent;
        Assert.True(root is not null, $"no ViTScratch.sln above {AppContext.BaseDirectory}");
        string dll = Path.Combine(root!.FullName, "samples", "TrainOwnTensors", "bin", configuration, framework, "TrainOwnTensors.dll");
        Assert.True(File.Exists(dll), $"{dll} is not built");

        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = await process.StandardOutput.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "the sample did not finish in 2 minutes");
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{stdout}\n{await stderr}");
        Assert.Matches(@"loaded model: accuracy (9\d|100)[.,]\d ?% on 200 new images", stdout);
        Assert.Matches(@"one image: class [01] \(true class [01]\)", stdout);
    }
}
