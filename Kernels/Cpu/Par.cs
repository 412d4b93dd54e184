namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// The body of a parallel loop: handles items [start, end) using only what <paramref name="state"/>
/// carries. Call sites pass a <c>static</c> lambda, which the compiler caches in a static field, and
/// a small struct of buffers and sizes, so a kernel call allocates neither a closure nor a delegate.
/// </summary>
internal delegate void ParBody<TState>(in TState state, int start, int end);

/// <summary>
/// Splits [0, count) into contiguous chunks, one per worker unless the caller asks for more, and
/// runs them on the persistent <see cref="WorkerPool"/>. Small jobs run inline: waking a second
/// core costs a few microseconds, more than many of the ViT's elementwise ops take on one core. When the pool is already running
/// another caller's job, or this is a nested call from inside a body, the work also runs inline on
/// the calling thread: correct, never blocked, only not parallel.
/// </summary>
internal static class Par
{
    public static readonly int Workers = Environment.ProcessorCount;

    /// <param name="count">number of items</param>
    /// <param name="costPerItem">rough work per item in flops or bytes; decides whether to go parallel</param>
    /// <param name="state">what the body reads: buffers, sizes, scalars</param>
    /// <param name="body">a static lambda <c>static (in S s, int start, int end) => ...</c></param>
    /// <param name="chunks">how many contiguous pieces to deal out; 0 = one per worker. More pieces
    /// than workers balance the load: the pool hands out pieces as threads come free, so a core that
    /// runs slower (another process on it, or on its host) ends up doing fewer of them.</param>
    public static void For<TState>(int count, long costPerItem, in TState state, ParBody<TState> body, int chunks = 0)
        where TState : struct
    {
        const long InlineWork = 32_768;
        chunks = Math.Min(chunks > 0 ? chunks : Workers, count);
        if (chunks <= 1 || count * costPerItem < InlineWork || !WorkerPool.Shared.TryRun(count, chunks, in state, body))
            body(in state, 0, count);
    }
}
