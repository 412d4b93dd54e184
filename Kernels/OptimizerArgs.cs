namespace ViTScratch.Kernels;

/// <summary>
/// Hyper-parameters of one AdamW step. The bias corrections 1 - beta^t are computed here once,
/// in double, so every backend uses the same numbers.
/// </summary>
/// <param name="Lr">Learning rate of this step.</param>
/// <param name="Beta1">Decay of the first-moment (mean) estimate, e.g. 0.9.</param>
/// <param name="Beta2">Decay of the second-moment estimate, e.g. 0.999.</param>
/// <param name="Eps">Added to the square root of the bias-corrected second moment.</param>
/// <param name="WeightDecay">Decoupled decay: each step multiplies the parameters by 1 − Lr·WeightDecay first.</param>
/// <param name="Step">Number of this step, from 1 (the bias corrections depend on it).</param>
public readonly record struct AdamWArgs(float Lr, float Beta1, float Beta2, float Eps, float WeightDecay, int Step)
{
    /// <summary>1 − Beta1^Step, dividing the first moment.</summary>
    public float BiasCorrection1 => (float)(1 - Math.Pow(Beta1, Step));
    /// <summary>1 − Beta2^Step, dividing the second moment.</summary>
    public float BiasCorrection2 => (float)(1 - Math.Pow(Beta2, Step));
}

/// <summary>Hyper-parameters of one SGD step (PyTorch semantics: L2 weight decay added to the gradient).</summary>
/// <param name="Lr">Learning rate of this step.</param>
/// <param name="Momentum">Momentum factor (0: plain SGD).</param>
/// <param name="Nesterov">Use Nesterov momentum.</param>
/// <param name="WeightDecay">L2 coefficient: WeightDecay·param is added to the gradient.</param>
/// <param name="FirstStep">The momentum buffer is empty: it starts as the gradient, as in PyTorch.</param>
public readonly record struct SgdArgs(float Lr, float Momentum, bool Nesterov, float WeightDecay, bool FirstStep);
