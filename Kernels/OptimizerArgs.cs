namespace ViTScratch.Kernels;

/// <summary>
/// Hyper-parameters of one AdamW step. The bias corrections 1 - beta^t are computed here once,
/// in double, so every backend uses the same numbers.
/// </summary>
public readonly record struct AdamWArgs(float Lr, float Beta1, float Beta2, float Eps, float WeightDecay, int Step)
{
    public float BiasCorrection1 => (float)(1 - Math.Pow(Beta1, Step));
    public float BiasCorrection2 => (float)(1 - Math.Pow(Beta2, Step));
}

/// <summary>Hyper-parameters of one SGD step (PyTorch semantics: L2 weight decay added to the gradient).</summary>
public readonly record struct SgdArgs(float Lr, float Momentum, bool Nesterov, float WeightDecay, bool FirstStep);
