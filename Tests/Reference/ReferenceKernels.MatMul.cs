using ViTScratch.Kernels;

namespace ViTScratch.Tests.Reference;

public static partial class ReferenceKernels
{
    /// <summary>
    /// For each batch b: C_b (=|+=) alpha * op(A_b) op(B_b), op(A_b) [M, K], op(B_b) [K, N].
    /// A_b is stored [M, K] at b * StrideA ([K, M] when TransA); B_b is stored [K, N] at
    /// b * StrideB ([N, K] when TransB); C_b is [M, N] at b * StrideC. Elements of C outside
    /// every C_b are left alone.
    /// </summary>
    public static void MatMul(double[] a, double[] b, double[] c, in MatMulShape s, double alpha, bool accumulate)
    {
        for (int bt = 0; bt < s.Batch; bt++)
        {
            long ao = bt * s.StrideA, bo = bt * s.StrideB, co = bt * s.StrideC;
            for (int i = 0; i < s.M; i++)
                for (int j = 0; j < s.N; j++)
                {
                    double acc = 0;
                    for (int p = 0; p < s.K; p++)
                        acc += a[ao + IndexA(s, i, p)] * b[bo + IndexB(s, p, j)];
                    ref double dst = ref c[co + (long)i * s.N + j];
                    dst = accumulate ? dst + alpha * acc : alpha * acc;
                }
        }
    }

    /// <summary>Where op(A)[i, p] is stored inside one batch of A.</summary>
    public static long IndexA(in MatMulShape s, int i, int p) => s.TransA ? (long)p * s.M + i : (long)i * s.K + p;

    /// <summary>Where op(B)[p, j] is stored inside one batch of B.</summary>
    public static long IndexB(in MatMulShape s, int p, int j) => s.TransB ? (long)j * s.K + p : (long)p * s.N + j;

    /// <summary>
    /// Gradients of C = alpha op(A) op(B): dA += alpha dC op(B)ᵀ and dB += alpha op(A)ᵀ dC, in A's and
    /// B's own storage layout (so a transposed operand receives a transposed gradient). IKernels has no
    /// matmul backward: the engine issues these products as MatMul calls, and this is the recipe
    /// written as plain loops, batch by batch, so a shared operand (batch stride 0) simply receives
    /// the contribution of every batch.
    /// </summary>
    public static void MatMulBackward(double[] a, double[] b, double[] dc, double[]? da, double[]? db, in MatMulShape s, double alpha)
    {
        for (int bt = 0; bt < s.Batch; bt++)
        {
            long ao = bt * s.StrideA, bo = bt * s.StrideB, co = bt * s.StrideC;
            for (int i = 0; i < s.M; i++)
                for (int j = 0; j < s.N; j++)
                {
                    double g = alpha * dc[co + (long)i * s.N + j];
                    for (int p = 0; p < s.K; p++)
                    {
                        if (da is not null) da[ao + IndexA(s, i, p)] += g * b[bo + IndexB(s, p, j)];
                        if (db is not null) db[bo + IndexB(s, p, j)] += g * a[ao + IndexA(s, i, p)];
                    }
                }
        }
    }
}
