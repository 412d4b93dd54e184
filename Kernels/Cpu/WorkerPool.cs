using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// A persistent pool of Workers - 1 background threads that, together with the calling thread,
/// run the chunks of one parallel loop (<see cref="Par.For"/>). It replaces Parallel.For, which
/// allocates about 2 KB per call (its loop state plus the caller's closure); a training step makes
/// hundreds of kernel calls, so that was most of the garbage a step produced.
///
/// One job at a time. A caller owns the pool by flipping <c>_busy</c> from 0 to 1; a second caller
/// that finds it busy (another thread, or a body calling Par.For again) gets false from
/// <see cref="TryRun"/> and runs its loop inline. Nothing ever waits for the pool itself, so
/// concurrent and nested calls can neither deadlock nor mix their jobs.
///
/// Publishing a job: the owner writes the job (body, state, item count) into fields, then
/// publishes one 64-bit ticket = generation (32 bits) | chunk count (16) | next unclaimed chunk (16).
/// Every participant, the owner included, claims chunks by compare-and-swap of next -> next + 1,
/// so a thread that wakes late simply finds no chunk left, and one that is descheduled has its
/// share taken by the others. A successful claim pins the job: it cannot finish, and so its fields
/// cannot be overwritten, until that chunk is done. The generation makes a stale ticket value from
/// an earlier job fail the compare-and-swap. Each finished chunk decrements <c>_remaining</c>; the
/// one that reaches zero sets <c>_done</c>, on which the owner waits before it clears the job,
/// releases the pool and rethrows the first exception any chunk threw.
///
/// Idle workers spin for about 50 µs (the gap between back-to-back kernels of a training step is
/// shorter, so the next kernel finds them awake), then block on a semaphore and use no CPU. A
/// worker counts itself in <c>_sleepers</c> before its last look at the ticket, and the owner
/// releases that many permits after publishing, so no wake-up is lost; a worker that saw the job
/// in that last look leaves one spare permit, which costs one spurious wake-up later.
///
/// Steady state allocates nothing: the job object is a per-state-type singleton (only the owner
/// touches it), and the semaphore and event wait on monitors created once.
/// </summary>
internal sealed class WorkerPool
{
    public static readonly WorkerPool Shared = new(Par.Workers - 1);

    private const int MaxChunks = 0xFFFF;
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000; // 50 µs

    private readonly SemaphoreSlim _wake = new(0);
    private readonly ManualResetEventSlim _done = new(false);
    private long _ticket;
    private uint _generation;
    private int _busy;
    private int _sleepers;
    private int _remaining;
    private int _count;
    private Job? _job;
    private ExceptionDispatchInfo? _error;

    private WorkerPool(int threads)
    {
        Threads = Math.Max(0, threads);
        for (int i = 0; i < Threads; i++)
            new Thread(WorkerLoop) { IsBackground = true, Name = $"ViTScratch CPU worker {i + 1}" }.Start();
    }

    /// <summary>Background threads; the caller of <see cref="TryRun"/> is one more participant.</summary>
    public int Threads { get; }

    /// <summary>Jobs that ran on the pool (not inline) since start-up; tests use it to check that a shape really went parallel.</summary>
    public long JobsRun => Volatile.Read(ref _jobsRun);
    private long _jobsRun;

    /// <summary>
    /// Runs body(state, start, end) over [0, count) in <paramref name="chunks"/> near-equal
    /// contiguous chunks and returns true once all are done; false, having run nothing, when the
    /// pool has no threads or is busy with another job.
    /// </summary>
    public bool TryRun<TState>(int count, int chunks, in TState state, ParBody<TState> body)
    {
        chunks = ClampChunks(chunks, count);
        if (chunks <= 0) return true; // nothing to do
        if (Threads == 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0) return false;

        var job = Job<TState>.Instance;
        job.State = state;
        job.Body = body;
        _job = job;
        _count = count;
        _remaining = chunks;
        _done.Reset();
        _generation++;
        Volatile.Write(ref _ticket, Pack(_generation, chunks, 0)); // publishes the fields above

        int sleepers = Interlocked.Exchange(ref _sleepers, 0);
        if (sleepers > 0) _wake.Release(sleepers);

        while (TryClaim(out int chunk, out int total)) RunChunk(chunk, total);
        _done.Wait();

        var error = _error;
        _error = null;
        job.State = default!; // drop the buffers' references until the next job
        job.Body = null;
        _job = null;
        _jobsRun++;
        Volatile.Write(ref _busy, 0);
        error?.Throw();
        return true;
    }

    private static long Pack(uint generation, int chunks, int next) => (long)generation << 32 | (long)chunks << 16 | (uint)next;

    /// <summary>How many chunks a job of <paramref name="count"/> items asked for <paramref name="chunks"/> runs in.</summary>
    internal static int ClampChunks(int chunks, int count) => Math.Min(Math.Min(chunks, count), MaxChunks);

    /// <summary>Where chunk <paramref name="chunk"/> of <paramref name="chunks"/> near-equal contiguous chunks of [0, count) starts.</summary>
    internal static int ChunkStart(int count, int chunk, int chunks) => (int)((long)count * chunk / chunks);

    private bool WorkAvailable()
    {
        long t = Volatile.Read(ref _ticket);
        return (int)(t & 0xFFFF) < (int)((t >> 16) & 0xFFFF);
    }

    private bool TryClaim(out int chunk, out int chunks)
    {
        long t = Volatile.Read(ref _ticket);
        while (true)
        {
            chunk = (int)(t & 0xFFFF);
            chunks = (int)((t >> 16) & 0xFFFF);
            if (chunk >= chunks) return false;
            long seen = Interlocked.CompareExchange(ref _ticket, t + 1, t);
            if (seen == t) return true;
            t = seen;
        }
    }

    private void RunChunk(int chunk, int chunks)
    {
        int count = _count;
        int start = ChunkStart(count, chunk, chunks), end = ChunkStart(count, chunk + 1, chunks);
        try
        {
            if (Volatile.Read(ref _error) is null) _job!.Run(start, end); // after a failure, skip the rest
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
        }
        // The last decrement may let the owner clear the job: touch nothing of it after this.
        if (Interlocked.Decrement(ref _remaining) == 0) _done.Set();
    }

    private void WorkerLoop()
    {
        while (true)
        {
            if (TryClaim(out int chunk, out int chunks))
            {
                RunChunk(chunk, chunks);
                continue;
            }
            if (SpinUntilWork()) continue;
            Interlocked.Increment(ref _sleepers);
            if (!WorkAvailable()) _wake.Wait();
        }
    }

    private bool SpinUntilWork()
    {
        long until = Stopwatch.GetTimestamp() + SpinTicks;
        do
        {
            if (WorkAvailable()) return true;
            Thread.SpinWait(16);
        } while (Stopwatch.GetTimestamp() < until);
        return false;
    }

    private abstract class Job
    {
        public abstract void Run(int start, int end);
    }

    // One instance per state type, reused by every job of that type: only the pool's current owner
    // writes it, and the pool runs one job at a time.
    private sealed class Job<TState> : Job
    {
        public static readonly Job<TState> Instance = new();
        public TState State = default!;
        public ParBody<TState>? Body;

        public override void Run(int start, int end) => Body!(in State, start, end);
    }
}
