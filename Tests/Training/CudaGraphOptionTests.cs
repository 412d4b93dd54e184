using ViTScratch.Tests.Data;
using ViTScratch.Training;
using ViTScratch.Training.Cli;
using ViTScratch.Training.Runs;

namespace ViTScratch.Tests.Training;

/// <summary>
/// `--cuda-graph` as an option: one-line refusals for what a graph cannot capture yet (the rule in
/// Training/TrainOptionRules.cs), kept through config.json, and a whole `vit train` run in the graph
/// form on the simulator giving the ordinary run's metrics bit for bit.
/// </summary>
public sealed class CudaGraphOptionTests : IDisposable
{
    private readonly TempDir _dir = new();

    [Theory]
    [InlineData("--device cpu", "--cuda-graph needs --device cuda")]
    [InlineData("--device cuda --patch-dropout 0 --dropout 0.1", "cannot capture dropout")]
    [InlineData("--device cuda --patch-dropout 0 --emb-dropout 0.1", "cannot capture dropout")]
    [InlineData("--device cuda --patch-dropout 0.5", "cannot capture patch dropout")]
    [InlineData("--device cuda --patch-dropout 0 --augment crop,mixup", "cannot capture mixup or cutmix")]
    public void WhatAGraphCannotCaptureIsOneLine(string flags, string expected)
    {
        var e = Assert.Throws<ViTScratchException>(() => TrainArgs.Parse(["--cuda-graph", .. flags.Split(' ')]));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void TheFlagIsOffUnlessGivenAndSurvivesConfigJson()
    {
        Assert.False(TrainArgs.Parse("--device", "cuda").CudaGraph);
        var o = TrainArgs.Parse("--cuda-graph", "--device", "cuda", "--patch-dropout", "0");
        Assert.True(o.CudaGraph);
        Assert.True(TrainOptions.FromJson(o.ToJson(), "config.json").CudaGraph);
        // A config.json from before the flag reads as off.
        Assert.False(TrainOptions.FromJson(o.ToJson().Replace("\"CudaGraph\": true,", "").Replace("\"CudaGraph\":true,", ""), "old config.json").CudaGraph);
    }

    [Fact]
    public void ARunInTheGraphFormMatchesTheOrdinaryRunOnTheSimulator()
    {
        // Two steps of 4 (step 1 warm, step 2 in the guarded region), tiny sizes (14x14 patches: 4
        // tokens and the cls): the simulator runs every GPU thread.
        TinyFashionMnist.Write(_dir.Path, train: 8, test: 4);
        TrainOptions Options(string name, bool graph) => new()
        {
            Dataset = "fashion-mnist", DataDir = _dir.Path, Model = "vit-micro", Patch = 14, Dim = 8, Depth = 1, Heads = 2, DimHead = 4, MlpDim = 8,
            Epochs = 1, BatchSize = 4, Lr = 2e-3f, WarmupEpochs = 0.5f, Device = "ilgpu-cpu", Seed = 3, Workers = 1, Augment = "crop,flip",
            EvalTest = "never", OutDir = _dir.Combine(name), CudaGraph = graph,
        };
        EpochMetrics RunOne(TrainOptions o)
        {
            using var trainer = new Trainer(o, TextWriter.Null);
            Assert.True(trainer.Run(CancellationToken.None));
            return trainer.Metrics.Single();
        }
        var ordinary = RunOne(Options("ordinary", graph: false));
        var graph = RunOne(Options("graph", graph: true));
        Assert.Equal(ordinary.TrainLoss, graph.TrainLoss);
        Assert.Equal(ordinary.TrainAccuracy, graph.TrainAccuracy);
        var a = global::ViTScratch.Model.Checkpoints.SafeTensors.Read(_dir.Combine("ordinary", "last.safetensors"));
        var b = global::ViTScratch.Model.Checkpoints.SafeTensors.Read(_dir.Combine("graph", "last.safetensors"));
        Assert.Equal(a.Tensors.Select(t => t.Name), b.Tensors.Select(t => t.Name));
        for (int i = 0; i < a.Tensors.Count; i++) Assert.Equal(a.Tensors[i].Data, b.Tensors[i].Data);
    }

    public void Dispose() => _dir.Dispose();
}
