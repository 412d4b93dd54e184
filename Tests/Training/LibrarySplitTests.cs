using System.Reflection;
using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Data;

namespace ViTScratch.Tests.Training;

/// <summary>
/// The training library stays usable without the runner: it references no plotting, imaging,
/// ONNX or console-runner assembly, and an image folder decodes through whatever decoder it is given.
/// </summary>
public class LibrarySplitTests
{
    [Fact]
    public void TheTrainingLibraryReferencesNeitherTheRunnerNorItsPackages()
    {
        var names = typeof(Trainer).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.Contains("ViTScratch.Model", names);
        foreach (var banned in new[] { "vit", "ScottPlot", "SkiaSharp", "ViTScratch.Imaging", "ViTScratch.Onnx", "Google.Protobuf" })
            Assert.DoesNotContain(banned, names);
    }

    [Fact]
    public void AnImageFolderUsesTheDecoderItIsGiven()
    {
        using var dir = new TempDir();
        foreach (var c in new[] { "a", "b" })
        {
            Directory.CreateDirectory(dir.Combine("train", c));
            File.WriteAllBytes(dir.Combine("train", c, "x.png"), [0]); // not a real PNG: only our decoder reads it
        }
        var calls = 0;
        ImageDecoder decoder = (path, channels, size, maxPixels) =>
        {
            Interlocked.Increment(ref calls);
            return Enumerable.Repeat(path.Contains("/a/") ? (byte)10 : (byte)200, channels * size * size).ToArray();
        };
        var data = ImageFolder.Load(dir.Path, "train", new FolderOptions { ImageSize = 4, Channels = 1, Decoder = decoder })!;
        Assert.Equal(2, calls);
        Assert.Equal(["a", "b"], data.ClassNames);
    }
}
