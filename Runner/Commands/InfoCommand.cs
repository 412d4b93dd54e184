using System.CommandLine;
using ViTScratch.Kernels;
using ViTScratch.Model;
using ViTScratch.Training.Cli;

namespace ViTScratch.Training.Commands;

/// <summary>`vit info`: which devices exist here, and the presets with their parameter counts.</summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "devices, presets and their parameter counts");
        command.SetAction(r => Run(r.InvocationConfiguration.Output));
        return command;
    }

    private static int Run(TextWriter stdout)
    {
        stdout.WriteLine("devices:");
        foreach (var name in BackendFactory.Names.Where(n => n != "auto"))
            stdout.WriteLine($"  {name,-10} {(BackendFactory.IsAvailable(name) ? "available" : "not available")}");
        if (BackendFactory.CudaUnavailableReason is { } why) stdout.WriteLine($"  (cuda: {why})");
        stdout.WriteLine($"  auto       -> {(BackendFactory.IsAvailable("cuda") ? "cuda" : "cpu")}");
        stdout.WriteLine($"  cpu: {Environment.ProcessorCount} threads, Vector512 {(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "yes" : "no")}");
        stdout.WriteLine();
        stdout.WriteLine(ViTPresets.Describe(3, 32, 32, 10).TrimEnd());
        stdout.WriteLine();
        stdout.WriteLine(ViTPresets.Describe(1, 28, 28, 10).TrimEnd());
        stdout.WriteLine();
        stdout.WriteLine("`vit train` on 28x28 data defaults to 7x7 patches (17 tokens) to fit a CPU budget; --patch 4 gives the table above.");
        return 0;
    }
}
