namespace ViTScratch.Kernels;

/// <summary>
/// The arithmetic a backend's matrix products (matmuls and the attention's products) use.
/// Everything else (master weights, optimizer state, layernorm and softmax statistics, the loss,
/// gradient norms) is float32 in every mode.
/// </summary>
public enum MathPrecision
{
    /// <summary>float32 inputs and float32 accumulation: the reference arithmetic.</summary>
    Fp32,
    /// <summary>Inputs rounded to TF32 (10-bit mantissa, float32 range), float32 accumulation, on tensor cores.</summary>
    Tf32,
    /// <summary>Inputs rounded to bfloat16 (7-bit mantissa, float32 range), float32 accumulation, on tensor cores.</summary>
    Bf16,
}
