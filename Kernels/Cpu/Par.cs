namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// Splits [0, count) into one contiguous chunk per worker. Small jobs run inline: a Parallel.For
/// costs a few microseconds, more than many of the ViT's elementwise ops take on one core.
/// </summary>
internal static class Par
{
    public static readonly int Workers = Environment.ProcessorCount;

    /// <param name="count">number of items</param>
    /// <param name="costPerItem">rough work per item in flops or bytes; decides whether to go parallel</param>
    public static void For(int count, long costPerItem, Action<int, int> body)
    {
        const long InlineWork = 32_768;
        int chunks = (int)Math.Min(Workers, count);
        if (chunks <= 1 || count * costPerItem < InlineWork)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, chunks, c =>
        {
            int start = (int)((long)count * c / chunks);
            int end = (int)((long)count * (c + 1) / chunks);
            body(start, end);
        });
    }
}
