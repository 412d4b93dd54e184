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
/// another caller's job, or this is a nested call from inside a body, the same chunks run inline on
/// the calling thread, one after another: the same bits, never blocked, only not parallel.
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
        if (chunks <= 1 || count * costPerItem < InlineWork) { body(in state, 0, count); return; }
        if (WorkerPool.Shared.TryRun(count, chunks, in state, body)) return;
        // The pool is busy (another caller's job, or this call comes from inside a body) or has no
        // threads: the same chunks run here, one after another. The bits must not depend on which
        // happened, and the chunk boundaries decide some of them: a kernel's SIMD body and its
        // scalar tail can round differently (a fused multiply-add against a multiply and an add).
        // One chunk instead made a run's results depend on what else held the pool (seen as a
        // resume that differed from the uninterrupted run in the last bit, under parallel tests).
        chunks = WorkerPool.ClampChunks(chunks, count);
        for (int c = 0; c < chunks; c++) body(in state, WorkerPool.ChunkStart(count, c, chunks), WorkerPool.ChunkStart(count, c + 1, chunks));
    }
}
