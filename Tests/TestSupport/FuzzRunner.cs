using System.Diagnostics;
using Xunit.Abstractions;

namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// Runs seeded fuzz cases against a reader of user files. Each case must end in a correct load
/// (the check passed as <c>load</c> asserts what correct means) or in one ViTScratchException line
/// that names the file; never another exception, a hang, or a large allocation. A failing case is
/// reported with its index and mutation, and the same seed and salt replay it.
/// </summary>
internal sealed class FuzzRunner(ITestOutputHelper output)
{
    public const int Seed = 20250117;

    /// <summary>The inputs fuzzed are under 100 KB and a correct load allocates well under 1 MB: this bound only catches claims that size an allocation.</summary>
    public const long CaseAllocationBound = 32 << 20;

    private static readonly TimeSpan CaseTimeBound = TimeSpan.FromSeconds(5), RunTimeBound = TimeSpan.FromSeconds(120);

    /// <summary>Outcome counts and the first failures of one fuzz run.</summary>
    public sealed class Tally
    {
        public int Loaded, Rejected;
        public readonly Dictionary<string, (int Count, string Example)> Stages = [];
        public readonly List<string> Failures = [];
        public TimeSpan Slowest;
    }

    /// <summary>
    /// Runs <paramref name="cases"/> cases on one thread (so the allocation counter sees the case's
    /// allocations), each made by <paramref name="mutate"/> and checked by <paramref name="load"/>;
    /// the whole run is bounded in time so a hang fails the test instead of stalling it.
    /// </summary>
    public Tally Run<TCase>(int cases, int salt, string source, Func<Random, (TCase Case, string What)> mutate, Action<TCase> load,
        Func<string, string> stageOf)
    {
        var tally = new Tally();
        var run = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < cases; i++)
            {
                var rng = new Random(Seed + salt * 100_000 + i);
                var (input, what) = mutate(rng);
                var clock = Stopwatch.StartNew();
                long before = GC.GetAllocatedBytesForCurrentThread();
                string? failure = null;
                try
                {
                    load(input);
                    tally.Loaded++;
                }
                catch (ViTScratchException e)
                {
                    tally.Rejected++;
                    string stage = stageOf(e.Message);
                    tally.Stages[stage] = (tally.Stages.GetValueOrDefault(stage).Count + 1, tally.Stages.GetValueOrDefault(stage).Example ?? e.Message);
                    if (e.Message.Contains('\n') || e.Message.Contains('\r')) failure = $"a message of several lines: {e.Message}";
                    else if (!e.Message.Contains(source)) failure = $"a message that does not name '{source}': {e.Message}";
                }
                catch (Exception e)
                {
                    failure = $"{e.GetType().Name}: {e.Message.Split('\n')[0]}";
                }
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (allocated > CaseAllocationBound) failure ??= $"allocated {allocated:N0} bytes";
                if (clock.Elapsed > CaseTimeBound) failure ??= $"took {clock.Elapsed.TotalSeconds:F1} s";
                if (clock.Elapsed > tally.Slowest) tally.Slowest = clock.Elapsed;
                if (failure is not null && tally.Failures.Count < 10) tally.Failures.Add($"case {i} ({what}): {failure}");
            }
        }, TaskCreationOptions.LongRunning);
        Assert.True(run.Wait(RunTimeBound), $"the fuzz run did not finish in {RunTimeBound.TotalSeconds} s: a case hangs");
        output.WriteLine($"{cases} cases: {tally.Loaded} loaded, {tally.Rejected} rejected; slowest case {tally.Slowest.TotalMilliseconds:F0} ms");
        foreach (var (stage, (count, example)) in tally.Stages.OrderBy(x => x.Key))
            output.WriteLine($"  {count,5} rejected at {stage}, e.g. {example}");
        Assert.True(tally.Failures.Count == 0, string.Join("\n", tally.Failures));
        return tally;
    }

}
