using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;

namespace ViTScratch.Training.Data;

/// <summary>
/// Turns an <see cref="ImageDataset"/> into a stream of augmented, normalised float batches.
///
/// Determinism: the epoch order is a Fisher–Yates shuffle driven by DataRandom(seed, epoch), and
/// every per-sample decision (RandAugment ops, crop offset, flip) by DataRandom(seed, epoch,
/// batch, sample-in-batch), every per-batch decision (Mixup/CutMix, λ, box) by
/// DataRandom(seed, epoch, batch, BatchStream). Batch contents are therefore a pure function of
/// (data, options, epoch, batch index): identical for any worker count, and a run resumed with
/// <c>GetEpoch(epoch, startBatch)</c> continues exactly where the interrupted one stopped.
///
/// Threading: with W workers, worker w prepares batches startBatch+w, startBatch+w+W, ... and
/// writes them to its own bounded channel (PrefetchPerWorker deep). The consumer reads the
/// channels round-robin, which restores batch order without any reordering buffer, and the
/// bounds stop workers from running ahead of the trainer by more than W·PrefetchPerWorker
/// batches. Batch buffers come from a pool and return to it on <see cref="DataBatch.Dispose"/>,
/// so a steady-state epoch allocates nothing per batch.
///
/// Streaming: an image folder's images beyond its cache are decoded from their files inside
/// Prepare, so on the worker threads, W·PrefetchPerWorker batches ahead of the consumer; decoding
/// overlaps the step instead of stalling it as long as W workers decode faster than it consumes
/// (`Benchmarks -- --folder-stream` measures both). A file that can no longer be read is left out
/// of its batch (which is one image shorter) and reported at the end of the pass.
///
/// Leaving an epoch early (break, exception, cancellation) cancels and joins its workers and
/// returns queued batches to the pool. One loader may serve consecutive epochs; it is not meant
/// for two epochs enumerated at the same time (each would still be correct, only slower).
/// </summary>
public sealed class DataLoader : IDisposable
{
    private readonly ImageDataset _data;
    private readonly DataLoaderOptions _o;
    private readonly float[] _scale, _bias;
    private readonly BatchPool _pool;
    private bool _disposed;

    /// <summary>A loader over <paramref name="data"/> (the options are validated now); <see cref="GetEpoch"/> starts the workers.</summary>
    public DataLoader(ImageDataset data, DataLoaderOptions options)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _data = data;
        _o = options;
        (_scale, _bias) = SampleTransforms.NormalisationFor(data.Mean, data.Std, options.Normalise);
        _pool = new BatchPool(this);
    }

    /// <summary>The images it loads.</summary>
    public ImageDataset Dataset => _data;
    /// <summary>The options it was built with.</summary>
    public DataLoaderOptions Options => _o;

    /// <summary>Batches in one epoch (a partial last one counts unless DropLast).</summary>
    public int BatchesPerEpoch => _o.DropLast ? _data.Count / _o.BatchSize : (_data.Count + _o.BatchSize - 1) / _o.BatchSize;

    /// <summary>Number of samples an epoch yields (all of them unless DropLast cuts the tail).</summary>
    public int SamplesPerEpoch => _o.DropLast ? BatchesPerEpoch * _o.BatchSize : _data.Count;

    /// <summary>The dataset indices of epoch <paramref name="epoch"/> in the order they are served.</summary>
    public int[] EpochOrder(int epoch)
    {
        var order = new int[_data.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        if (!_o.Shuffle) return order;
        var rng = DataRandom.For(_o.Seed, epoch, 0, DataRandom.ShuffleStream);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>
    /// The batches of one epoch, in order, starting at batch <paramref name="startBatch"/> (for
    /// resuming). Dispose each batch after use to recycle its buffers.
    /// </summary>
    public IEnumerable<DataBatch> GetEpoch(int epoch, int startBatch = 0, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (startBatch < 0 || startBatch > BatchesPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(startBatch), $"startBatch must be in 0..{BatchesPerEpoch}.");
        return WithReport(_o.Workers == 0 ? Synchronous(epoch, startBatch, cancel) : Parallel(epoch, startBatch, cancel));
    }

    // After each pass, however it ends: how many streamed images were left out of it (if any).
    private IEnumerable<DataBatch> WithReport(IEnumerable<DataBatch> batches)
    {
        try
        {
            foreach (var batch in batches) yield return batch;
        }
        finally { _data.ReportSkipped(); }
    }

    private IEnumerable<DataBatch> Synchronous(int epoch, int startBatch, CancellationToken cancel)
    {
        int[] order = EpochOrder(epoch);
        var ws = new Workspace(_data.ImageSize);
        for (int b = startBatch; b < BatchesPerEpoch; b++)
        {
            cancel.ThrowIfCancellationRequested();
            yield return Prepare(epoch, b, order, ws);
        }
    }

    private IEnumerable<DataBatch> Parallel(int epoch, int startBatch, CancellationToken cancel)
    {
        int[] order = EpochOrder(epoch);
        int total = BatchesPerEpoch;
        int workers = Math.Max(1, Math.Min(_o.Workers, total - startBatch));
        var channels = new Channel<DataBatch>[workers];
        var tasks = new Task[workers];
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        for (int w = 0; w < workers; w++)
        {
            channels[w] = Channel.CreateBounded<DataBatch>(new BoundedChannelOptions(_o.PrefetchPerWorker)
            {
                SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait,
            });
            int first = startBatch + w;
            var writer = channels[w].Writer;
            // Dedicated threads (LongRunning): workers block on the bounded channel, and the
            // consumer usually blocks too; neither should tie up thread-pool threads.
            tasks[w] = Task.Factory.StartNew(() => Worker(epoch, first, workers, order, writer, stop.Token),
                stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
        try
        {
            for (int b = startBatch; b < total; b++)
            {
                cancel.ThrowIfCancellationRequested(); // queued batches must not outlive a cancellation
                var reader = channels[(b - startBatch) % workers].Reader;
                DataBatch batch;
                try
                {
                    if (!reader.TryRead(out batch!))
                        batch = reader.ReadAsync(cancel).AsTask().GetAwaiter().GetResult();
                }
                catch (ChannelClosedException e) when (e.InnerException != null)
                {
                    ExceptionDispatchInfo.Throw(e.InnerException); // a worker failed: surface its exception
                    throw;
                }
                yield return batch;
            }
        }
        finally
        {
            stop.Cancel();
            // Workers catch everything themselves; a task cancelled before it started only throws here.
            try { Task.WaitAll(tasks); }
            catch (AggregateException) { }
            foreach (var ch in channels)
                while (ch.Reader.TryRead(out var left)) left.Dispose();
        }
    }

    private void Worker(int epoch, int first, int stride, int[] order, ChannelWriter<DataBatch> writer, CancellationToken cancel)
    {
        var ws = new Workspace(_data.ImageSize);
        try
        {
            for (int b = first; b < BatchesPerEpoch; b += stride)
            {
                cancel.ThrowIfCancellationRequested();
                var batch = Prepare(epoch, b, order, ws);
                try
                {
                    if (!writer.TryWrite(batch))
                        writer.WriteAsync(batch, cancel).AsTask().GetAwaiter().GetResult();
                }
                catch { batch.Dispose(); throw; }
            }
            writer.TryComplete();
        }
        catch (OperationCanceledException) { writer.TryComplete(); }
        catch (Exception e) { writer.TryComplete(e); }
    }

    /// <summary>Per-thread scratch: one uint8 image being augmented and one scratch image for geometric ops.</summary>
    private sealed class Workspace(int imageSize)
    {
        public readonly byte[] Image = new byte[imageSize];
        public readonly byte[] Scratch = new byte[imageSize];
    }

    /// <summary>Builds batch <paramref name="b"/> of the epoch; a pure function of its arguments and the options.</summary>
    private DataBatch Prepare(int epoch, int b, int[] order, Workspace ws)
    {
        _o.BeforePrepare?.Invoke(b);
        int bs = _o.BatchSize;
        int start = b * bs, count = Math.Min(bs, _data.Count - start);
        int c = _data.Channels, h = _data.Height, w = _data.Width, size = _data.ImageSize;
        var batch = _pool.Rent();
        batch.Epoch = epoch; batch.Index = b; batch.Count = count; batch.Lambda = 1f;

        // n counts the samples kept: a streamed image whose file can no longer be read is left out
        // (the dataset warns), and the others keep their own random draws, keyed by position i.
        int n = 0;
        for (int i = 0; i < count; i++)
        {
            int idx = order[start + i];
            var rng = DataRandom.For(_o.Seed, epoch, b, i);
            if (!_data.TryRead(idx, out var src)) continue;
            batch.SampleIndices[n] = idx;
            batch.LabelsA[n] = _data.Labels[idx];
            if (_o.RandAugmentOps > 0)
            {
                src.CopyTo(ws.Image);
                RandAugment.Apply(ws.Image, ws.Scratch, c, h, w, _o.RandAugmentOps, _o.RandAugmentMagnitude, ref rng);
                src = ws.Image;
            }
            int pad = _o.CropPadding;
            int dx = pad > 0 ? rng.NextInt(2 * pad + 1) : 0, dy = pad > 0 ? rng.NextInt(2 * pad + 1) : 0;
            bool flip = _o.HorizontalFlip && rng.NextBool();
            SampleTransforms.CropFlipNormalise(src, batch.Images.AsSpan(n * size, size), c, h, w, pad, dx, dy, flip, _scale, _bias);
            RandomErasing.Apply(batch.Images.AsSpan(n * size, size), c, h, w, _o.ErasingProbability, ref rng);
            n++;
        }
        if (n == 0)
        {
            batch.Dispose();
            throw new ViTScratchException($"none of the {count} images of batch {b} could be read (see the warnings above); check the files of '{_data.Source}'");
        }
        batch.Count = count = n;

        bool mixup = _o.MixupAlpha > 0, cutmix = _o.CutMixAlpha > 0;
        if ((mixup || cutmix) && count > 1)
        {
            var rng = DataRandom.For(_o.Seed, epoch, b, DataRandom.BatchStream);
            bool useCutMix = cutmix && (!mixup || rng.NextDouble() < _o.CutMixProbability);
            var images = batch.Images.AsSpan(0, count * size);
            if (useCutMix)
            {
                double lam = rng.NextBeta(_o.CutMixAlpha, _o.CutMixAlpha);
                var box = BatchMixing.CutMixBox(h, w, lam, rng.NextInt(w), rng.NextInt(h));
                batch.Lambda = BatchMixing.CutMix(images, count, c, h, w, box);
            }
            else
            {
                batch.Lambda = BatchMixing.Mixup(images, count, size, (float)rng.NextBeta(_o.MixupAlpha, _o.MixupAlpha));
            }
            for (int i = 0; i < count; i++) batch.LabelsB[i] = batch.LabelsA[count - 1 - i];
        }
        else
        {
            Array.Copy(batch.LabelsA, batch.LabelsB, count);
        }
        return batch;
    }

    /// <summary>Drops the pooled batch buffers; the loader cannot start another epoch afterwards.</summary>
    public void Dispose()
    {
        _disposed = true;
        _pool.Clear();
    }

    /// <summary>Recycles batch buffers; it grows only to the number of batches simultaneously alive.</summary>
    internal sealed class BatchPool(DataLoader owner)
    {
        private readonly ConcurrentBag<DataBatch> _free = new();
        /// <summary>Batches ever allocated (for tests and diagnostics: stays bounded in steady state).</summary>
        public int Allocated;

        public DataBatch Rent()
        {
            if (!_free.TryTake(out var batch))
            {
                Interlocked.Increment(ref Allocated);
                var d = owner._data;
                batch = new DataBatch(owner._o.BatchSize, d.Channels, d.Height, d.Width, this);
            }
            batch.MarkRented();
            return batch;
        }

        public void Return(DataBatch batch)
        {
            if (!owner._disposed) _free.Add(batch);
        }

        public void Clear() => _free.Clear();
    }

    /// <summary>Batch buffers allocated so far (bounded by workers·prefetch + batches the consumer holds).</summary>
    public int AllocatedBatches => _pool.Allocated;
}
