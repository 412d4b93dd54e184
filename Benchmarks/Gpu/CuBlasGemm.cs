using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ViTScratch.Kernels;

namespace ViTScratch.Benchmarks.Gpu;

/// <summary>
/// cuBLAS SGEMM (through ILGPU.Algorithms' CuBlas wrapper) with our row-major, transposable
/// operands: the baseline our matmul kernel is measured against, in the same process and stream.
/// cuBLAS is column-major, and a row-major [M, N] matrix is the column-major [N, M] matrix Cᵀ, so
/// C = op(A) op(B) is computed as Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands, keep each one's
/// transpose flag, and pass each stored row length as its leading dimension.
/// The math mode stays cuBLAS's default (CUBLAS_DEFAULT_MATH: full FP32, no TF32 tensor cores),
/// so both sides do the same float32 arithmetic.
/// </summary>
internal sealed class CuBlasGemm : IDisposable
{
    private readonly CuBlas _blas;

    public CuBlasGemm(Accelerator accelerator)
    {
        var cuda = accelerator as CudaAccelerator
            ?? throw new InvalidOperationException("cuBLAS needs a CUDA accelerator");
        _blas = new CuBlas(cuda);
        _blas.Stream = (CudaStream)cuda.DefaultStream;
        _blas.PointerMode = CuBlasPointerMode.Host; // alpha and beta are host floats
        _blas.MathMode = CuBlasMathMode.DefaultMath;
    }

    /// <summary>cuBLAS's version number, e.g. 130100 for 13.1.0.</summary>
    public int Version => _blas.Version;

    /// <summary>C[M, N] = op(A) op(B) for one (unbatched) <paramref name="s"/>.</summary>
    public void Gemm(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, in MatMulShape s)
    {
        int lda = s.TransA ? s.M : s.K; // row length of A as stored: [K, M] or [M, K]
        int ldb = s.TransB ? s.K : s.N; // row length of B as stored: [N, K] or [K, N]
        _blas.Gemm(
            s.TransB ? CuBlasOperation.Transpose : CuBlasOperation.NonTranspose,
            s.TransA ? CuBlasOperation.Transpose : CuBlasOperation.NonTranspose,
            s.N, s.M, s.K, 1f, b, ldb, a, lda, 0f, c, s.N);
    }

    public void Dispose() => _blas.Dispose();
}
