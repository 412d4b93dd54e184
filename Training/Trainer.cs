using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using ViTScratch.Engine;
using ViTScratch.Model;
using ViTScratch.Model.Checkpoints;
using ViTScratch.Training.Data;
using ViTScratch.Training.Optim;
using ViTScratch.Training.Runs;

namespace ViTScratch.Training;

/// <summary>
/// The training loop behind `vit train`: data → model → loss → backward → optimizer, one epoch at a
/// time; after each epoch a validation evaluation (with --val-split), the checkpoints, metrics.csv
/// and the TensorBoard log (and whatever the <see cref="ITrainingObserver"/> adds: the runner's
/// curves.png); after the last, one test evaluation of best.safetensors.
/// A run is a pure function of its options (all randomness derives from the seed and the position
/// in the run), which is what lets --resume continue exactly and --seed reproduce a CPU run.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly TrainOptions _o;
    private readonly TextWriter _log;
    private readonly ITrainingObserver? _observer;
    private readonly Device _device;
    private readonly DataLoader _trainLoader;
    private readonly DataLoader? _testLoader; // null for an image folder without test/
    private readonly DataLoader? _valLoader; // null without --val-split
    private readonly ViT _model;
    private readonly Optimizer _optimizer;
    private readonly WeightAverage? _average; // --ema
    private readonly int _averageFrom;        // the average takes in every step after this one (int.MaxValue: none)
    private readonly LrSchedule _schedule;
    private readonly List<EpochMetrics> _metrics = new();
    private readonly DataProvenance _data;
    private readonly TensorBoardLog _tensorBoard;
    private readonly DataDescription _description;
    private TrainingPosition _pos = TrainingPosition.Start;
    private CapturedStep? _captured; // --cuda-graph: made at the first step, which gives the batch shape

    /// <summary>
    /// Loads the data and builds the model and optimizer of a run. A new run (<paramref name="resumeFrom"/>
    /// null) refuses a run directory that already holds a run unless <paramref name="overwrite"/>.
    /// A resumed run checks that the data is the data it was trained on (<see cref="DataProvenance"/>),
    /// and accepts other data with a warning only when <paramref name="dataRetargeted"/> (an explicit --data).
    /// </summary>
    public Trainer(TrainOptions options, TextWriter log, DatasetOptions? datasetOptions = null, string? resumeFrom = null,
        bool dataRetargeted = false, bool overwrite = false, ITrainingObserver? observer = null)
    {
        _o = options;
        _log = log;
        _observer = observer;
        // Resumed options skip the parser's check; an unsupported --cuda-graph fails before any loading.
        if (options.CudaGraphProblem() is string graphProblem) throw new ViTScratchException($"vit train: {graphProblem}");
        // The run directory first: an unwritable --out or an existing run fails before minutes of loading.
        var checkpoint = resumeFrom is null ? null : TrainingCheckpoint.Read(resumeFrom);
        if (resumeFrom is null) RunDirectory.PrepareForNewRun(options.OutDir, overwrite);
        else RunDirectory.PrepareForWriting(options.OutDir);

        // The run's image-folder settings, on a copy: the caller's options are left as they were.
        datasetOptions = (datasetOptions ?? new DatasetOptions()).WithFolder((datasetOptions?.Folder ?? new FolderOptions()) with
        {
            ImageSize = options.ImageSize, Channels = options.Channels, CacheMb = options.CacheMb, Strict = options.Strict, Log = log,
        });
        var (train, val, test) = DatasetCatalog.LoadSplits(options.Dataset, options.DataDir, datasetOptions);
        var info = options.Dataset == ImageFolder.Name ? DatasetInfo.Of(train) : DatasetCatalog.Info(options.Dataset);
        _data = DataProvenance.Of(train, test);
        if (checkpoint is not null) CheckResumedData(checkpoint, resumeFrom!, train, test, dataRetargeted);
        // Validation comes out of the whole training split, before --train-limit, so it is the
        // same set however much of the rest a run uses (unless the data brings its own).
        if (val is null) (train, val) = ValidationSplit.Split(train, options.ValSplit, options.SplitSeed);
        if (options.TrainLimit > 0 && options.TrainLimit < train.Count) train = train.Take(options.TrainLimit);
        if (test is not null && options.TestLimit > 0 && options.TestLimit < test.Count) test = test.Take(options.TestLimit);

        _device = Device.Create(options.Device);
        _device.Kernels.Precision = options.KernelPrecision(); // before any kernel runs: the model's init included
        var config = options.ModelConfig(train.Channels, train.Height, train.Width, train.ClassCount);
        _model = new ViT(config, _device, options.Seed);

        var parameters = OptimParam.From(_model);
        _optimizer = options.Optimizer == "sgd"
            ? new Sgd(parameters, options.Momentum, options.Nesterov, options.WeightDecay, options.ClipNorm)
            : new AdamW(parameters, options.WeightDecay, maxGradNorm: options.ClipNorm);

        _trainLoader = new DataLoader(train, TrainLoaderOptions(options, info, train.Count));
        // --ema: a second model of the same configuration holds the average (its own initial
        // values are overwritten at its first step); its start is a function of the step alone.
        if (options.Ema > 0) _average = new WeightAverage(new ViT(config, _device, options.Seed), _optimizer, options.Ema);
        _averageFrom = _average is null ? int.MaxValue : options.EmaStartEpoch() * _trainLoader.BatchesPerEpoch;
        var evalOptions = DataLoaderOptions.ForEvaluation(256);
        // One worker is plenty to copy cached images; a streamed split needs them all to decode.
        evalOptions.Workers = test?.CachedCount < test?.Count || val?.CachedCount < val?.Count ? options.Workers : Math.Min(options.Workers, 1);
        if (test is not null) _testLoader = new DataLoader(test, evalOptions);
        if (val is not null) _valLoader = new DataLoader(val, evalOptions);

        int steps = _trainLoader.BatchesPerEpoch;
        // --unmasked-lr: the unmasked epochs get a cosine of their own (a function of the step alone, so resume is exact).
        _schedule = new LrSchedule(options.Lr, (int)Math.Round(options.WarmupEpochs * steps), options.Epochs * steps, options.MinLr,
            RestartStep: (options.Epochs - options.UnmaskedEpochs) * steps, RestartLr: options.UnmaskedLr);

        if (checkpoint is not null) Resume(checkpoint, resumeFrom!);
        _tensorBoard = new TensorBoardLog(options.OutDir);
        _description = DataDescription.Of(train);

        _log.WriteLine($"data    {train.Name}: {train.Count} train / {(val is null ? "no" : val.Count.ToString())} val / {(test is null ? "no" : test.Count.ToString())} test images, {train.Height}x{train.Width}x{train.Channels}, {train.ClassCount} classes, from {train.Source}");
        _log.WriteLine($"model   {options.Model}: {_model.ParameterCount:N0} parameters ({config.NumPatches + 1} tokens of {config.Dim}, " +
            $"depth {config.Depth}, {config.Heads} heads of {config.DimHead}, mlp {config.MlpDim})");
        _log.WriteLine($"train   {options.Optimizer} lr {options.Lr:G3} wd {options.WeightDecay:G3}, {options.Epochs} epochs x {steps} steps of {options.BatchSize}, augment {options.Augment}" +
            (options.PatchDropout > 0 ? $", patch dropout {options.PatchDropout:G3} ({_model.PatchDropout.Keep} of {config.NumPatches} patches per step" +
                (options.UnmaskedEpochs > 0 ? $"; every patch in the last {options.UnmaskedEpochs} epochs" +
                    (options.UnmaskedLr > 0 ? $", lr restarted at {options.UnmaskedLr:G3} for them)" : ")") : ")") : "") +
            (options.Tta == "flip" ? "; validation and test average each image with its mirror image (--tta flip)" : "") +
            (_average is null ? "" : $"; validation, checkpoints and test take the weights' moving average (--ema {options.Ema:G4}, " +
                (options.EmaEpochs > 0 ? $"over the last {options.EmaEpochs} epochs)" : "over the whole run)")) +
            (val is not null && options.ValEvery > 1 ? $"; validation every {options.ValEvery} epochs, " +
                (options.UnmaskedEpochs > 0 ? "after each unmasked epoch " : "") + "and after the last" : ""));
        _log.WriteLine($"device  {_device.Name}{(options.CudaGraph ? (_device.Name == "cuda" ? ", step captured as a CUDA graph" : ", step in CUDA-graph form (not captured on " + _device.Name + ")") : "")}   run directory {Path.GetFullPath(options.OutDir)}");
    }

    /// <summary>The model being trained.</summary>
    public ViT Model => _model;

    // For tests: the loaders, whose options carry a hook that can stall or interrupt a batch.
    internal DataLoader TrainLoader => _trainLoader;
    internal DataLoader TestLoader => _testLoader!;
    internal DataLoader? ValLoader => _valLoader;

    /// <summary>Raised after every optimizer step with the global step number (progress hooks, tests).</summary>
    public event Action<int>? StepCompleted;
    /// <summary>One row per finished epoch.</summary>
    public IReadOnlyList<EpochMetrics> Metrics => _metrics;

    internal static DataLoaderOptions TrainLoaderOptions(TrainOptions o, DatasetInfo info, int count)
    {
        var l = DataLoaderOptions.ForTraining(info, o.BatchSize, o.Seed);
        // Full batches only, so every step has the same shapes and the buffer pool serves them all;
        // the dropped tail differs every epoch because the order is reshuffled.
        l.DropLast = count >= o.BatchSize;
        l.Workers = o.Workers;
        var aug = o.AugmentSet();
        if (!aug.Contains("default"))
        {
            l.CropPadding = aug.Contains("crop") ? o.CropPadding : 0;
            l.HorizontalFlip = aug.Contains("flip");
        }
        if (aug.Contains("randaugment")) { l.RandAugmentOps = o.RandAugmentOps; l.RandAugmentMagnitude = o.RandAugmentMagnitude; }
        if (aug.Contains("erase")) l.ErasingProbability = o.ErasingProbability;
        if (aug.Contains("mixup")) l.MixupAlpha = 0.8f;
        if (aug.Contains("cutmix")) l.CutMixAlpha = 1.0f;
        return l;
    }

    private string RunFile(string name) => Path.Combine(_o.OutDir, name);

    // A resumed run must see the data it was trained on: same images in the same order (its
    // batches are positions in that order) and as many of them (the epoch length sets the schedule).
    private void CheckResumedData(SafeTensorsFile checkpoint, string path, ImageDataset train, ImageDataset? test, bool retargeted)
    {
        var recorded = DataProvenance.FromMetadata(checkpoint.Metadata, path);
        if (recorded is null)
        {
            _log.WriteLine($"warning: '{path}' records no data fingerprint (it predates them); the data in {train.Source} cannot be checked against it");
            return;
        }
        recorded.Check(train, train: true, retargeted, path, _log);
        recorded.Check(test, train: false, retargeted, path, _log);
        int Used(int count, int limit) => limit > 0 ? Math.Min(limit, count) : count;
        int before = Used(recorded.TrainImages, _o.TrainLimit), now = Used(train.Count, _o.TrainLimit);
        if (before != now)
            throw new ViTScratchException($"'{path}' cannot be resumed on this data: its epochs had {before} training images and this data gives {now}, " +
                "which changes the epoch length and the schedule; resume on the run's own data, or start a new run");
    }

    private void Resume(SafeTensorsFile file, string checkpointPath)
    {
        // Everything is checked before anything is copied: the position, then the model the
        // metadata describes against the one the run's options build (a pool or dropout change
        // would load without a shape error and silently train another model).
        _pos = TrainingCheckpoint.ReadPosition(file, checkpointPath);
        if (_pos.Epoch > _o.Epochs || _pos.Batch > _trainLoader.BatchesPerEpoch)
            throw new ViTScratchException($"checkpoint '{checkpointPath}': its position (epoch {_pos.Epoch + 1}, batch {_pos.Batch}) is past the end of a run of " +
                $"{_o.Epochs} epochs of {_trainLoader.BatchesPerEpoch} batches; the file is corrupt");
        ViTConfig stored;
        try { stored = ViTConfig.FromMetadata(file.Metadata); }
        catch (ViTScratchException e) { throw new ViTScratchException($"checkpoint '{checkpointPath}': {e.Message}", e); }
        if (stored != _model.Config)
            throw new ViTScratchException($"checkpoint '{checkpointPath}': its model metadata ({stored}) is not the model its training options build " +
                $"({_model.Config}); the file is corrupt or was edited");
        // With --ema, once the average has started, the file's model tensors are the average and
        // the trained weights are stored beside them (TrainingCheckpoint.WeightsPrefix).
        var modelTensors = file.Tensors.Where(t => !t.Name.StartsWith(TrainingCheckpoint.OptimizerPrefix, StringComparison.Ordinal)).ToList();
        var weights = file.Tensors.Where(t => t.Name.StartsWith(TrainingCheckpoint.WeightsPrefix, StringComparison.Ordinal))
            .Select(t => t with { Name = t.Name[TrainingCheckpoint.WeightsPrefix.Length..] }).ToList();
        bool averaging = _pos.Step > _averageFrom;
        if (averaging && weights.Count == 0)
            throw new ViTScratchException($"checkpoint '{checkpointPath}': its position (step {_pos.Step}) is inside the run's weight average (--ema from step {_averageFrom + 1}), " +
                "but it holds no average; the file is corrupt or its options were edited");
        if (!averaging && weights.Count > 0)
            throw new ViTScratchException($"checkpoint '{checkpointPath}': it holds a weight average, but its options " +
                (_average is null ? "have no --ema" : $"start the average at step {_averageFrom + 1}, after its position (step {_pos.Step})") +
                "; the file is corrupt or its options were edited");
        if (averaging)
        {
            _model.LoadStateDict(weights, checkpointPath);
            _average!.Model.LoadStateDict(modelTensors, checkpointPath);
        }
        else _model.LoadStateDict(modelTensors, checkpointPath);
        TrainingCheckpoint.LoadOptimizer(file, _optimizer);
        // The epochs done so far: from the checkpoint itself, so a lost or stale metrics.csv cannot
        // change them; older checkpoints without them fall back to metrics.csv.
        if (file.Metadata.TryGetValue(MetricsKey, out var rows))
            _metrics.AddRange(EpochMetrics.ParseAll(rows, checkpointPath).Where(r => r.Epoch <= _pos.Epoch));
        else if (RunFile("metrics.csv") is var csv && File.Exists(csv))
            _metrics.AddRange(EpochMetrics.ParseAll(File.ReadAllText(csv), csv).Where(r => r.Epoch <= _pos.Epoch));
        _log.WriteLine($"resume  from {checkpointPath}: epoch {_pos.Epoch + 1}, batch {_pos.Batch}, step {_pos.Step}");
    }

    private const string MetricsKey = "metrics_csv";

    /// <summary>
    /// Trains until the last epoch, or until <paramref name="cancel"/> fires: then, wherever it
    /// fired (a step, a wait for the data loader, the test evaluation, between epochs), it saves
    /// last.safetensors at the last completed step, prints the command that resumes it and
    /// returns false. Checkpoints are written before the side files (metrics.csv, curves.png),
    /// and a side file that cannot be written is a warning, not a lost epoch.
    /// </summary>
    public bool Run(CancellationToken cancel)
    {
        WriteSideFile("config.json", () => AtomicFile.WriteAllText(RunFile("config.json"), ConfigJson()));
        var counter = Tensor.Zeros(_device, 1);
        _captured?.Dispose(); // a captured step holds the counter of the Run that made it
        _captured = null;
        // best.safetensors is chosen on validation accuracy, never on test; without a validation
        // split there is nothing to choose on and it is the last epoch's model.
        double best = _metrics.Where(m => m.HasVal).Select(m => m.ValAccuracy).DefaultIfEmpty(-1).Max();
        int steps = _trainLoader.BatchesPerEpoch;

        for (int epoch = _pos.Epoch; epoch < _o.Epochs; epoch++)
        {
            _model.Train();
            // --unmasked-epochs: the last epochs see every patch. A function of the epoch alone,
            // so a run resumed inside them (or before them) continues exactly.
            _model.PatchDropout.Active = epoch < _o.Epochs - _o.UnmaskedEpochs;
            bool midEpoch = _pos.Epoch == epoch && _pos.Batch > 0;
            int nextBatch = midEpoch ? _pos.Batch : 0;
            double lossSum = midEpoch ? _pos.LossSum : 0, priorSeconds = midEpoch ? _pos.Seconds : 0;
            long correctBefore = midEpoch ? _pos.Correct : 0, seen = midEpoch ? _pos.Seen : 0, seenAtStart = seen;
            int step = _pos.Step;
            counter.CopyFrom([0f]);
            var clock = Stopwatch.StartNew();
            _observer?.EpochStarted(epoch + 1, _o.Epochs, steps - nextBatch);
            float lr = _schedule.At(Math.Max(step, 1));
            int done = 0;
            double valLoss = double.NaN, valAcc = double.NaN, testLoss = double.NaN, testAcc = double.NaN;
            try
            {
                foreach (var batch in _trainLoader.GetEpoch(epoch, nextBatch, cancel))
                {
                    using (batch)
                    using (new TensorScope())
                    {
                        step++;
                        lr = _schedule.At(step);
                        float loss = _o.CudaGraph ? GraphStep(batch, step, lr, counter) : TrainStep(batch, step, lr, counter);
                        if (step > _averageFrom) _average!.Update(start: step == _averageFrom + 1);
                        lossSum += (double)loss * batch.Count;
                        seen += batch.Count;
                        nextBatch = batch.Index + 1;
                        done++;
                        if (_observer is not null && (_observer.WantsProgress(done) || cancel.IsCancellationRequested))
                        {
                            // The accuracy counter lives on the device; read it only when it is shown.
                            long correctSoFar = correctBefore + (long)counter.Item();
                            _observer.Progress(done, seen - seenAtStart, (float)(lossSum / seen), (float)correctSoFar / seen, lr);
                        }
                        StepCompleted?.Invoke(step);
                        cancel.ThrowIfCancellationRequested();
                    }
                }
                if (_valLoader is not null && _o.ValidatesAfter(epoch)) (valLoss, valAcc) = Evaluate(JudgedModel(step), _valLoader, cancel, tta: _o.Tta);
                if (_o.EvalTest == "epoch" && _testLoader is not null) (testLoss, testAcc) = Evaluate(JudgedModel(step), _testLoader, cancel, tta: _o.Tta);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                // Everything up to the last completed step is kept; an interrupted evaluation is
                // redone on resume (the position then says: all batches of this epoch done).
                long correct = correctBefore + (long)counter.Item();
                _pos = new TrainingPosition(epoch, nextBatch, step, lossSum, correct, seen, priorSeconds + clock.Elapsed.TotalSeconds);
                SaveLast();
                ReportInterrupted();
                return false;
            }

            double seconds = priorSeconds + clock.Elapsed.TotalSeconds;
            long trainCorrect = correctBefore + (long)counter.Item();
            var row = new EpochMetrics(epoch + 1, lossSum / Math.Max(seen, 1), (double)trainCorrect / Math.Max(seen, 1), valLoss, valAcc, testLoss, testAcc,
                lr, (seen - seenAtStart) / Math.Max(clock.Elapsed.TotalSeconds, 1e-9), seconds);
            _metrics.Add(row);
            _pos = new TrainingPosition(epoch + 1, 0, step, 0, 0, 0, 0);
            SaveLast(); // the checkpoint first: nothing after it can lose the epoch
            string mark = "";
            if (_valLoader is null || valAcc > best)
            {
                if (_valLoader is not null) best = valAcc;
                WriteSideFile("best.safetensors", () =>
                    AtomicFile.Write(RunFile("best.safetensors"), s => { using var f = File.OpenRead(RunFile("last.safetensors")); f.CopyTo(s); }));
                mark = _valLoader is null ? "" : " (best)";
            }
            WriteSideFile("metrics.csv", () => EpochMetrics.WriteAll(RunFile("metrics.csv"), _metrics));
            if (_observer is not null) WriteSideFile(ObserverFiles, () => _observer.EpochCompleted(_metrics));
            WriteSideFile("the TensorBoard log", () => _tensorBoard.Scalars(row.Epoch,
            [
                ("train/loss", row.TrainLoss), ("train/accuracy", row.TrainAccuracy), ("val/loss", row.ValLoss), ("val/accuracy", row.ValAccuracy),
                ("test/loss", row.TestLoss), ("test/accuracy", row.TestAccuracy), ("lr", row.Lr), ("images_per_second", row.ImagesPerSecond),
            ]));
            var c = CultureInfo.InvariantCulture;
            _log.WriteLine(string.Create(c, $"epoch {epoch + 1}/{_o.Epochs}: train loss {row.TrainLoss:F4} acc {row.TrainAccuracy * 100:F2}%") +
                (row.HasVal ? string.Create(c, $" | val loss {valLoss:F4} acc {valAcc * 100:F2}%{mark}") : "") +
                (row.HasTest ? string.Create(c, $" | test loss {testLoss:F4} acc {testAcc * 100:F2}%") : "") +
                string.Create(c, $" | {row.ImagesPerSecond:F0} img/s, {Duration.Format(seconds)}"));
            if (cancel.IsCancellationRequested && epoch + 1 < _o.Epochs)
            {
                ReportInterrupted(); // last.safetensors already holds the end of this epoch
                return false;
            }
        }
        if (_o.EvalTest == "never") return true;
        if (_testLoader is null)
        {
            _log.WriteLine("test    none: the data has no test split (an image folder without test/), so no result.json");
            return true;
        }
        try
        {
            FinalTest = TestBest(cancel);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            _log.WriteLine($"interrupted during the final test evaluation; every epoch is saved: vit eval --checkpoint {RunFile("best.safetensors")} measures it");
            return false;
        }
        return true;
    }

    /// <summary>The test split, measured once at the end on best.safetensors (null before, or with --eval-test never).</summary>
    public TestResult? FinalTest { get; private set; }

    // The one test measurement of a run: the checkpoint chosen on validation (or the last epoch's,
    // without a validation split) on the test split, written to result.json.
    private TestResult TestBest(CancellationToken cancel)
    {
        string path = RunFile("best.safetensors");
        if (!File.Exists(path)) path = RunFile("last.safetensors");
        var withVal = _metrics.Where(m => m.HasVal).ToList();
        var chosen = withVal.Count > 0 ? withVal.MaxBy(m => m.ValAccuracy)! : _metrics[^1];
        var model = TrainingCheckpoint.LoadModel(path, _device);
        var (loss, acc) = Evaluate(model, _testLoader!, cancel, tta: _o.Tta);
        var result = new TestResult(Path.GetFileName(path), chosen.Epoch, withVal.Count > 0 ? "val" : "last epoch",
            chosen.ValAccuracy, loss, acc, _testLoader!.Dataset.Count) { Tta = _o.Tta };
        WriteSideFile(TestResult.FileName, () => AtomicFile.WriteAllText(RunFile(TestResult.FileName), result.ToJson()));
        _log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"test    {result.Checkpoint} (epoch {result.Epoch}, chosen on {result.SelectedOn}): loss {loss:F4}, accuracy {acc * 100:F2}% on {result.Images} test images, measured once"));
        return result;
    }

    private void ReportInterrupted()
    {
        _log.WriteLine();
        _log.WriteLine($"interrupted: saved {RunFile("last.safetensors")} (epoch {_pos.Epoch + 1}, batch {_pos.Batch}, step {_pos.Step}); " +
                       $"continue with: vit train --resume {_o.OutDir}");
    }

    // What the observer writes at the end of an epoch (the runner's curves.png): whatever it throws is a warning.
    private const string ObserverFiles = "the observer's epoch output";

    // A side file that cannot be written (a full disk, a plotting failure) costs that file, not
    // the run: one warning line, and training goes on. The checkpoint is written before them.
    private void WriteSideFile(string name, Action write)
    {
        try { write(); }
        catch (Exception e) when (e is ViTScratchException or IOException or UnauthorizedAccessException || name == ObserverFiles)
        {
            _log.WriteLine($"warning: {name} not written ({e.Message}); training goes on");
        }
    }

    /// <summary>config.json: the options of the run and the data it trains on.</summary>
    private string ConfigJson()
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(_o.ToJson())!.AsObject();
        node["Data"] = System.Text.Json.Nodes.JsonNode.Parse(_data.ToJson());
        return node.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

    private float TrainStep(DataBatch batch, int step, float lr, Tensor counter)
    {
        int n = batch.Count;
        _model.Step = (uint)step;
        var images = Tensor.Input(_device, batch.ImagesSpan, batch.Shape);   // images: [B, C, H, W]
        var labelsA = Tensor.Input(_device, batch.LabelsAAsFloats(), n);     // labels: [B]
        var logits = _model.Forward(images);                                 // logits: [B, classes]
        float smoothing = _o.LabelSmoothing;
        Tensor loss = Ops.Mean(Ops.CrossEntropy(logits, labelsA, smoothing));
        if (batch.IsMixed)
        {
            // Mixup / CutMix: λ·CE(y_a) + (1 − λ)·CE(y_b).
            var labelsB = Tensor.Input(_device, batch.LabelsBAsFloats(), n);
            loss = Ops.Add(Ops.Scale(loss, batch.Lambda), Ops.Scale(Ops.Mean(Ops.CrossEntropy(logits, labelsB, smoothing)), 1 - batch.Lambda));
        }
        loss.Backward();
        _optimizer.Step(lr);
        _optimizer.ZeroGrad();
        Ops.CountCorrect(logits, labelsA, counter);
        float value = loss.Item(); // the one host synchronisation of a step
        if (!float.IsFinite(value))
            throw new ViTScratchException($"the loss became {value} at step {step} (lr {lr:G3}); lower --lr or keep --clip on");
        return value;
    }

    // --cuda-graph: the same device work as TrainStep (mixing is refused by the options), queued
    // from fixed input tensors with the optimizer's step-dependent values on the device
    // (CapturedStep); the loss is read and checked after the step, outside the graph.
    private float GraphStep(DataBatch batch, int step, float lr, Tensor counter)
    {
        _model.Step = (uint)step;
        _captured ??= new CapturedStep(_device, _optimizer, batch.Shape, (images, labels) =>
        {
            var logits = _model.Forward(images);
            var loss = Ops.Mean(Ops.CrossEntropy(logits, labels, _o.LabelSmoothing));
            loss.Backward();
            _optimizer.StepOnDevice();
            _optimizer.ZeroGrad();
            Ops.CountCorrect(logits, labels, counter);
            return loss;
        });
        float value = _captured.Run(batch.ImagesSpan, batch.LabelsAAsFloats(), lr);
        if (!float.IsFinite(value))
            throw new ViTScratchException($"the loss became {value} at step {step} (lr {lr:G3}); lower --lr or keep --clip on");
        return value;
    }

    /// <summary>Mean cross-entropy (no smoothing) and accuracy of <paramref name="model"/> on every image of the loader.</summary>
    /// <remarks>
    /// With <paramref name="perClass"/>, also counts each class's images and correct answers (it reads the logits back to the host).
    /// With <paramref name="tta"/> "flip", each image is judged by the mean of its logits and its mirror image's
    /// (<see cref="TrainOptions.Tta"/>); the loss is the cross-entropy of those mean logits.
    /// </remarks>
    public static (double Loss, double Accuracy) Evaluate(ViT model, DataLoader loader, CancellationToken cancel = default,
        PerClassCounts? perClass = null, string tta = "none")
    {
        CheckTta(tta);
        var device = model.Device;
        model.Eval();
        var counter = Tensor.Zeros(device, 1);
        double lossSum = 0;
        long seen = 0;
        using (Tensor.NoGrad())
            foreach (var batch in loader.GetEpoch(0, 0, cancel))
                using (batch)
                using (new TensorScope())
                {
                    var labels = Tensor.Input(device, batch.LabelsAAsFloats(), batch.Count);
                    var logits = Logits(model, batch.ImagesSpan, batch.Shape, tta);
                    lossSum += Ops.Sum(Ops.CrossEntropy(logits, labels)).Item();
                    Ops.CountCorrect(logits, labels, counter);
                    perClass?.Add(logits.ToArray(), batch.LabelsASpan, batch.Count);
                    seen += batch.Count;
                }
        model.Train();
        return (lossSum / Math.Max(seen, 1), counter.Item() / Math.Max(seen, 1));
    }

    /// <summary>
    /// The logits an evaluation judges <paramref name="images"/> by: the model's, or with
    /// <paramref name="tta"/> "flip" the mean of the model's logits for the images and for their
    /// mirror images (<see cref="TrainOptions.Tta"/>). Call it in eval mode under <see cref="Tensor.NoGrad"/>.
    /// </summary>
    // images: [B, C, H, W] on the host -> logits: [B, classes] on the model's device
    internal static Tensor Logits(ViT model, ReadOnlySpan<float> images, int[] shape, string tta)
    {
        CheckTta(tta);
        if (tta == "none") return model.Forward(Tensor.Input(model.Device, images, shape));
        // The mirror image first, in a scope of its own that keeps only its logits ([B, classes],
        // through the host): the two forwards' intermediates never coexist, so evaluating with the
        // flip needs no more memory than without it (in one scope, a 3-epoch fmnist-best run's
        // peak resident memory went from 0.91 to 1.41 GB). And what a forward leaves behind (the
        // captured attention maps) is then the image's own.
        float[] mirroredLogits;
        using (new TensorScope())
        {
            var mirrored = ArrayPool<float>.Shared.Rent(images.Length);
            try
            {
                SampleTransforms.MirrorLeftRight(images, mirrored.AsSpan(0, images.Length), shape[3]);
                mirroredLogits = model.Forward(Tensor.Input(model.Device, mirrored.AsSpan(0, images.Length), shape)).ToArray();
            }
            finally
            {
                ArrayPool<float>.Shared.Return(mirrored);
            }
        }
        var logits = model.Forward(Tensor.Input(model.Device, images, shape));
        var logitsMirrored = Tensor.Input(model.Device, mirroredLogits, logits.Shape);
        return Ops.Scale(Ops.Add(logits, logitsMirrored), 0.5f);
    }

    private static void CheckTta(string tta)
    {
        if (!TrainOptions.Choices[nameof(TrainOptions.Tta)].Contains(tta))
            throw new ArgumentException($"unknown test-time augmentation '{tta}' (none or flip)", nameof(tta));
    }

    // The model an evaluation after step `step` judges: the weight average once it has started (--ema), else the trained model.
    private ViT JudgedModel(int step) => step > _averageFrom ? _average!.Model : _model;

    private void SaveLast()
    {
        string path = RunFile("last.safetensors");
        var extra = new Dictionary<string, string>
        {
            [DataProvenance.MetadataKey] = _data.ToJson(),
            [MetricsKey] = EpochMetrics.ToCsv(_metrics),
            [DataDescription.MetadataKey] = _description.ToJson(),
        };
        try
        {
            TrainingCheckpoint.Save(path, _model, _optimizer, _o, _pos, extra, _pos.Step > _averageFrom ? _average : null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException
                                  || e is ViTScratchException { InnerException: IOException or UnauthorizedAccessException })
        {
            // SafeTensors.Write is atomic: the previous last.safetensors, if any, is untouched.
            var cause = e is ViTScratchException ? e.InnerException! : e;
            string previous = File.Exists(path) ? $"; the previous checkpoint there is intact: fix this and continue with 'vit train --resume {_o.OutDir}'" : "";
            throw new ViTScratchException(AtomicFile.WriteFailure(path, cause) + previous, cause);
        }
    }

    /// <summary>Stops the loaders and frees the device.</summary>
    public void Dispose()
    {
        _trainLoader.Dispose();
        _testLoader?.Dispose();
        _valLoader?.Dispose();
        _captured?.Dispose();
        _device.Dispose();
    }
}

/// <summary>Per-class totals of an evaluation: how many images of each class, and how many of them were classified right.</summary>
public sealed class PerClassCounts(int classes)
{
    /// <summary>Images of each class.</summary>
    public long[] Total { get; } = new long[classes];
    /// <summary>Of those, classified right.</summary>
    public long[] Correct { get; } = new long[classes];

    internal void Add(float[] logits, ReadOnlySpan<int> labels, int count)
    {
        int classes = Total.Length;
        for (int i = 0; i < count; i++)
        {
            int label = labels[i], best = 0;
            for (int c = 1; c < classes; c++)
                if (logits[i * classes + c] > logits[i * classes + best]) best = c;
            Total[label]++;
            if (best == label) Correct[label]++;
        }
    }
}
