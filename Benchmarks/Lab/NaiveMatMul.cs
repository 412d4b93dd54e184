using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The CPU backend's first matmul, kept verbatim as the benchmarks' baseline: one dot product per
/// output element, rows split across cores, no SIMD, no blocking, no packing (TransB and TransA
/// walk memory with a stride). Speed-ups in docs/log/2026-performance-log.md are measured against it.
/// </summary>
internal static class NaiveMatMul
{
    public static void Run(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, MatMulShape sh, float alpha, bool accumulate)
    {
        var As = CpuBuffer.Of(a); var Bs = CpuBuffer.Of(b); var Cs = CpuBuffer.Of(c);
        int rows = sh.Batch * sh.M, chunks = Environment.ProcessorCount;
        Parallel.For(0, chunks, t =>
        {
            int s = (int)((long)rows * t / chunks), e = (int)((long)rows * (t + 1) / chunks);
            var A = As.Span; var B = Bs.Span; var C = Cs.Span;
            for (int row = s; row < e; row++)
            {
                int bt = row / sh.M, i = row % sh.M;
                long ao = bt * sh.StrideA, bo = bt * sh.StrideB, co = bt * sh.StrideC;
                for (int j = 0; j < sh.N; j++)
                {
                    float acc = 0;
                    for (int p = 0; p < sh.K; p++)
                    {
                        float av = sh.TransA ? A[(int)(ao + (long)p * sh.M + i)] : A[(int)(ao + (long)i * sh.K + p)];
                        float bv = sh.TransB ? B[(int)(bo + (long)j * sh.K + p)] : B[(int)(bo + (long)p * sh.N + j)];
                        acc += av * bv;
                    }
                    ref float dst = ref C[(int)(co + (long)i * sh.N + j)];
                    dst = accumulate ? dst + alpha * acc : alpha * acc;
                }
            }
        });
    }
}
