namespace ViTScratch.Engine;

/// <summary>
/// Switches for the model's fused ops (Ops.LinearGelu, Ops.AddLayerNorm), on unless turned off:
/// the interleaved A/B benchmarks time a step with and without them, and tests compare the two
/// paths. Per thread, so a benchmark or test that turns one off cannot change what a model
/// computes on another thread (parallel tests, bit-exact resume checks). Not user-facing: both
/// paths compute the same function, the fused one with fewer passes over memory.
/// </summary>
internal static class Fusions
{
    [ThreadStatic] private static bool _linearGeluOff, _addLayerNormOff;

    /// <summary>The MLP's first Linear and its GELU as one op (the backward fuses GELU' with the bias gradient).</summary>
    public static bool LinearGelu { get => !_linearGeluOff; set => _linearGeluOff = !value; }

    /// <summary>Each residual add with the LayerNorm that follows it as one op.</summary>
    public static bool AddLayerNorm { get => !_addLayerNormOff; set => _addLayerNormOff = !value; }
}
