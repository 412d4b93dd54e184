using System.Collections.Concurrent;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Tests.TestSupport;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// Par.For on the persistent worker pool: every item of ragged ranges visited exactly once, the
/// first exception of any chunk rethrown to the caller (and the pool usable afterwards), callers
/// on several threads at once each getting their own correct result, and nested calls completing.
/// Results are exact (integer sums, or kernels whose every element is computed the same way
/// whatever the chunking), so any lost, repeated or mixed-up chunk shows.
/// In the run-alone collection: no other test class holds the pool meanwhile, so a job that should
/// go parallel must run on the pool, and the concurrency here is only the test's own.
/// </summary>
[Collection(AllocationCollection.Name)]
public class WorkerPoolTests
{
    // Cost per item that makes Par.For go to the pool for any count >= 2.
    private const long Parallel = 1 << 20;

    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(1); // a deadlock fails instead of hanging the run

    private readonly record struct VisitJob(int[] Visits, int[] Threads);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(65)]
    [InlineData(100_003)]
    public void EveryItemIsVisitedExactlyOnce(int count)
    {
        long jobsBefore = WorkerPool.Shared.JobsRun;
        var job = new VisitJob(new int[count], new int[count]);
        Par.For(count, Parallel, job, static (in VisitJob j, int start, int end) =>
        {
            for (int i = start; i < end; i++)
            {
                Interlocked.Increment(ref j.Visits[i]);
                j.Threads[i] = Environment.CurrentManagedThreadId;
            }
        });
        Assert.All(job.Visits, v => Assert.Equal(1, v));
        // Each chunk is contiguous and run by one thread: at most one change of thread per chunk boundary.
        int changes = 0;
        for (int i = 1; i < count; i++) if (job.Threads[i] != job.Threads[i - 1]) changes++;
        Assert.True(changes < Par.Workers, $"{changes} thread changes along the range: chunks are not contiguous");
        if (Par.Workers > 1 && count > 1)
            Assert.True(WorkerPool.Shared.JobsRun > jobsBefore, "the job ran inline, not on the pool");
    }

    private readonly record struct ThrowJob(int ThrowAt, int[] Done);

    [Theory]
    [InlineData(0)]
    [InlineData(99_999)]
    [InlineData(50_000)]
    public void AnExceptionInAChunkReachesTheCaller(int throwAt)
    {
        const int N = 100_000;
        var job = new ThrowJob(throwAt, new int[N]);
        var ex = Assert.Throws<InvalidOperationException>(() =>
            Par.For(N, Parallel, job, static (in ThrowJob j, int start, int end) =>
            {
                for (int i = start; i < end; i++)
                {
                    if (i == j.ThrowAt) throw new InvalidOperationException($"item {i}");
                    j.Done[i] = 1;
                }
            }));
        Assert.Equal($"item {throwAt}", ex.Message);

        // The pool was released: the next job runs completely.
        var after = new VisitJob(new int[N], new int[N]);
        Par.For(N, Parallel, after, static (in VisitJob j, int start, int end) =>
        {
            for (int i = start; i < end; i++) j.Visits[i]++;
        });
        Assert.All(after.Visits, v => Assert.Equal(1, v));
    }

    private readonly record struct SumJob(long[] Values, long[] Partial, int Chunks);

    [Fact]
    public void ConcurrentCallersEachGetTheirOwnResult()
    {
        const int Threads = 6, Rounds = 300;
        var failures = new string?[Threads];
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            var rnd = new Random(1000 + t);
            for (int round = 0; round < Rounds && failures[t] is null; round++)
            {
                int n = rnd.Next(1, 20_000);
                var values = new long[n];
                for (int i = 0; i < n; i++) values[i] = rnd.Next(1, 1000);
                long want = values.Sum();
                // Each item is doubled in place, then all are summed per item index: a job that ran
                // twice, partly, or on another caller's array gives a different total.
                var job = new SumJob(values, new long[1], 0);
                Par.For(n, Parallel, job, static (in SumJob j, int start, int end) =>
                {
                    long s = 0;
                    for (int i = start; i < end; i++) { j.Values[i] *= 2; s += j.Values[i]; }
                    Interlocked.Add(ref j.Partial[0], s);
                });
                if (job.Partial[0] != 2 * want || values.Sum() != 2 * want)
                    failures[t] = $"thread {t} round {round} n={n}: sum {job.Partial[0]}, array {values.Sum()}, want {2 * want}";
            }
        })).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) Assert.True(w.Join(Deadline), "a caller did not finish: deadlock");
        Assert.All(failures, f => Assert.Null(f));
    }

    [Fact]
    public void ConcurrentKernelCallsMatchSerialOnes()
    {
        // AdamW computes every element with the same operations whatever the chunking (its vector
        // and scalar paths round identically), so results must be bitwise equal to a serial run.
        const int Threads = 4, N = 100_003, Steps = 20;
        var r = TestRandom.For("pool adamw");
        float[] p0 = r.Floats(N), g = r.Floats(N);
        var args = new AdamWArgs(1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, 1);

        float[] Run()
        {
            var k = new CpuKernels();
            DeviceBuffer p = k.Allocate(N), gb = k.Allocate(N), m = k.Allocate(N), v = k.Allocate(N);
            k.Upload(p0, p); k.Upload(g, gb); k.Fill(m, 0f, N); k.Fill(v, 0f, N);
            for (int s = 1; s <= Steps; s++) k.AdamWStep(p, gb, m, v, N, args with { Step = s }, null, 0f);
            var result = new float[N];
            k.Download(p, result);
            return result;
        }

        float[] want = Run();
        var got = new float[Threads][];
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() => got[t] = Run())).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(Deadline), "a caller did not finish: deadlock");
        for (int t = 0; t < Threads; t++) Assert.Equal(want, got[t]);
    }

    private readonly record struct OuterJob(int[] Visits, int Inner);

    [Fact]
    public void NestedCallsRunInlineAndComplete()
    {
        const int Outer = 37, Inner = 1001;
        var job = new OuterJob(new int[Outer * Inner], Inner);
        var caller = new Thread(() => Par.For(Outer, Parallel, job, static (in OuterJob j, int start, int end) =>
        {
            for (int o = start; o < end; o++)
            {
                int offset = o * j.Inner;
                // The nested body writes only its own outer row.
                Par.For(j.Inner, Parallel, new RowJob(j.Visits, offset), static (in RowJob rj, int s, int e) =>
                {
                    for (int i = s; i < e; i++) Interlocked.Increment(ref rj.Visits[rj.Offset + i]);
                });
            }
        }));
        caller.Start();
        Assert.True(caller.Join(Deadline), "nested Par.For did not finish: deadlock");
        Assert.All(job.Visits, v => Assert.Equal(1, v));
    }

    private readonly record struct RowJob(int[] Visits, int Offset);

    private readonly record struct MeetJob(int[] Started, bool[] SawBoth);

    // Right results alone cannot show that the workers take part: the caller claims chunks too, and
    // would run every chunk itself if no worker ever woke. Here each of two chunks waits (up to 5 s)
    // for the other to start, so both must run at once, on two threads: once while the workers
    // spin after the previous job, and once after they have gone to sleep and must be woken.
    [Fact]
    public void TheWorkersRunChunksBesideTheCaller()
    {
        if (Par.Workers < 2) return; // one core: there is no second thread to meet
        foreach (int pauseMs in new[] { 0, 200 })
        {
            Thread.Sleep(pauseMs); // 200 ms: far past the workers' 50 µs of spinning
            var job = new MeetJob(new int[1], new bool[2]);
            Par.For(2, Parallel, job, static (in MeetJob j, int start, int end) =>
            {
                Interlocked.Increment(ref j.Started[0]);
                var deadline = DateTime.UtcNow.AddSeconds(5);
                while (Volatile.Read(ref j.Started[0]) < 2 && DateTime.UtcNow < deadline) Thread.SpinWait(64);
                j.SawBoth[start] = Volatile.Read(ref j.Started[0]) == 2;
            });
            Assert.True(job.SawBoth[0] && job.SawBoth[1], $"after a pause of {pauseMs} ms the two chunks did not run at the same time: no worker took one");
        }
    }

    private readonly record struct ChunkJob(ConcurrentBag<(int Start, int End)> Chunks);
    private readonly record struct NestedChunkJob(ConcurrentBag<(int Start, int End)> Chunks, int Count);

    // The chunk boundaries decide some bits (a kernel's SIMD body and its scalar tail can round
    // differently), so a pool that is busy (here: a call from inside a body) must hand the caller
    // the chunks the pool would have run, not one chunk of everything.
    [Theory]
    [InlineData(7)]
    [InlineData(100_003)]
    public void ABusyPoolRunsTheSameChunksOnTheCaller(int count)
    {
        var free = new ConcurrentBag<(int, int)>();
        Par.For(count, Parallel, new ChunkJob(free), static (in ChunkJob j, int s, int e) => j.Chunks.Add((s, e)));
        var busy = new ConcurrentBag<(int, int)>();
        Par.For(2, Parallel, new NestedChunkJob(busy, count), static (in NestedChunkJob j, int s, int e) =>
        {
            if (s == 0) Par.For(j.Count, Parallel, new ChunkJob(j.Chunks), static (in ChunkJob c, int s2, int e2) => c.Chunks.Add((s2, e2)));
        });
        Assert.Equal(free.Order(), busy.Order());
        Assert.Equal(Math.Min(Par.Workers, count), free.Count);
    }

    private readonly record struct ScaleJob(CpuKernels K, DeviceBuffer X, DeviceBuffer Y, int N);

    // y += 0.3·x is a fused multiply-add in the vector body and a multiply and an add in the scalar
    // tail, so it gives other bits at a chunk boundary when the chunks change: the same kernel called
    // with the pool busy must give the bits it gives on a free pool (24 lengths, two boundary
    // elements each, so a change of chunking cannot pass by chance).
    [Fact]
    public void AKernelGivesTheSameBitsWhenThePoolIsBusy()
    {
        var r = TestRandom.For("busy pool scale");
        for (int n = 100_003; n < 100_003 + 48; n += 2)
        {
            float[] x = r.Floats(n), y0 = r.Floats(n);
            float[] Run(bool busy)
            {
                var k = new CpuKernels();
                DeviceBuffer xb = k.Allocate(n), yb = k.Allocate(n);
                k.Upload(x, xb);
                k.Upload(y0, yb);
                if (busy)
                    Par.For(2, Parallel, new ScaleJob(k, xb, yb, n), static (in ScaleJob j, int s, int e) =>
                    {
                        if (s == 0) j.K.Scale(j.X, j.Y, j.N, 0.3f, accumulate: true);
                    });
                else k.Scale(xb, yb, n, 0.3f, accumulate: true);
                var result = new float[n];
                k.Download(yb, result);
                return result;
            }
            Assert.Equal(Run(busy: false), Run(busy: true));
        }
    }
}
