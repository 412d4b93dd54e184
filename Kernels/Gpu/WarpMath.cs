using ILGPU;

namespace ViTScratch.Kernels.Gpu;

/// <summary>
/// Warp-wide reductions by butterfly shuffles: after log2(32) = 5 xor-exchanges every lane holds
/// the result, so no shared memory and no barrier is needed. All 32 lanes must call these
/// together (lanes with no data contribute the identity: 0 for sums, -inf for max).
/// Unrolled by hand because ILGPU does not unroll loops.
/// </summary>
internal static class WarpMath
{
    public static float Sum(float v)
    {
        v += Warp.ShuffleXor(v, 16);
        v += Warp.ShuffleXor(v, 8);
        v += Warp.ShuffleXor(v, 4);
        v += Warp.ShuffleXor(v, 2);
        v += Warp.ShuffleXor(v, 1);
        return v;
    }

    public static float Max(float v)
    {
        v = MathF.Max(v, Warp.ShuffleXor(v, 16));
        v = MathF.Max(v, Warp.ShuffleXor(v, 8));
        v = MathF.Max(v, Warp.ShuffleXor(v, 4));
        v = MathF.Max(v, Warp.ShuffleXor(v, 2));
        v = MathF.Max(v, Warp.ShuffleXor(v, 1));
        return v;
    }

    /// <summary>
    /// Arg-max across the warp: the largest value, ties resolved to the smallest index (the
    /// "first maximum wins" rule of CountCorrect). Returns the winning index in every lane.
    /// </summary>
    public static int ArgMax(float v, int index)
    {
        for (int offset = 16; offset > 0; offset >>= 1)
        {
            float ov = Warp.ShuffleXor(v, offset);
            int oi = Warp.ShuffleXor(index, offset);
            if (ov > v || (ov == v && oi < index)) { v = ov; index = oi; }
        }
        return index;
    }
}
