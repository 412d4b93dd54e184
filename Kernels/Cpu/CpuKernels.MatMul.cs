namespace ViTScratch.Kernels.Cpu;

// PLACEHOLDER (correct, slow): row-parallel triple loop. To be replaced by the packed-panel,
// register-blocked Vector512 micro-kernel.
public sealed partial class CpuKernels
{
    public void MatMul(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, in MatMulShape shape, float alpha, bool accumulate)
    {
        var sh = shape;
        var As = CpuBuffer.Of(a); var Bs = CpuBuffer.Of(b); var Cs = CpuBuffer.Of(c);
        Par.For(sh.Batch * sh.M, (long)sh.N * sh.K, (s, e) =>
        {
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
