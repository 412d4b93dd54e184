using System.Runtime.CompilerServices;
using ILGPU;

namespace ViTScratch.Kernels.Gpu;

/// <summary>
/// Register-resident rows for the row-wise kernels (softmax, layernorm): a row of up to
/// <c>Slots x 32</c> columns is read from global memory once, kept in registers through its
/// reductions, and written once.
///
/// Teams: a row belongs to a team of T lanes, T a power of two from 4 to 32 (the smallest with
/// T x Slots >= cols), so a warp holds 32 / T rows. Lane t of a team keeps columns t, t + T, ...,
/// t + (Slots - 1) T in the fields of one <see cref="RowSlots"/> value. Why teams: one warp per
/// short row idles lanes (a row of 65 on 32 lanes is 3 loads per lane, the last with 1 lane of
/// 32 busy; on 8-lane teams it is 9 loads, 65 of 72 lanes busy), and why registers: every load
/// of a lane issues before the first one is needed, so a warp has Slots loads in flight instead
/// of one per dependent loop trip (ILGPU does not unroll loops, so the slots are unrolled here).
/// Team reductions are butterfly shuffles with offsets below T: an xor with such an offset stays
/// inside the aligned T-lane team, so teams reduce independently and need no mask.
/// A lane past the row's end (or a team past the last row, which loads nothing: n = 0) holds a
/// pad value chosen by the caller: -inf for a max, 0 for sums; its stores are skipped.
/// </summary>
internal static class RowMath
{
    /// <summary>Columns per lane kept in registers: 12 x 32 = 384 covers every ViT row (10 to 384).</summary>
    public const int Slots = 12;

    /// <summary>The widest row the register path takes; longer rows use the looping kernels.</summary>
    public const int MaxCols = Slots * GpuKernels.WarpSize;

    /// <summary>Lanes per row for a row of <paramref name="cols"/> (cols ≤ MaxCols).</summary>
    public static int TeamSize(int cols)
    {
        int t = 4;
        while (t * Slots < cols) t *= 2;
        return t;
    }

    /// <summary>Groups of 256 threads for one team per row: 8 warps x 32 / team rows each.</summary>
    public static int Groups(int rows, int team)
    {
        int rowsPerGroup = GpuKernels.WarpsPerGroup * (GpuKernels.WarpSize / team);
        return (rows + rowsPerGroup - 1) / rowsPerGroup;
    }

    /// <summary>Sum over the T lanes of each team; every lane of the team gets the result.</summary>
    public static float TeamSum(float v, int team)
    {
        if (team > 16) v += Warp.ShuffleXor(v, 16);
        if (team > 8) v += Warp.ShuffleXor(v, 8);
        if (team > 4) v += Warp.ShuffleXor(v, 4);
        v += Warp.ShuffleXor(v, 2);
        v += Warp.ShuffleXor(v, 1);
        return v;
    }

    /// <summary>Max over the T lanes of each team.</summary>
    public static float TeamMax(float v, int team)
    {
        if (team > 16) v = MathF.Max(v, Warp.ShuffleXor(v, 16));
        if (team > 8) v = MathF.Max(v, Warp.ShuffleXor(v, 8));
        if (team > 4) v = MathF.Max(v, Warp.ShuffleXor(v, 4));
        v = MathF.Max(v, Warp.ShuffleXor(v, 2));
        v = MathF.Max(v, Warp.ShuffleXor(v, 1));
        return v;
    }

    // Slot k of lane t holds column t + k T; present when that column is below n.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Get(ArrayView<float> a, int start, int c, int n, float pad) => c < n ? a[start + c] : pad;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(ArrayView<float> a, int start, int c, int n, float v)
    {
        if (c < n) a[start + c] = v;
    }

    /// <summary>a[start + t + k T] for the slots whose column is below n, pad elsewhere. All 12 loads issue together.</summary>
    public static RowSlots Load(ArrayView<float> a, int start, int t, int team, int n, float pad)
    {
        RowSlots s;
        s.V0 = Get(a, start, t, n, pad);
        s.V1 = Get(a, start, t + team, n, pad);
        s.V2 = Get(a, start, t + 2 * team, n, pad);
        s.V3 = Get(a, start, t + 3 * team, n, pad);
        s.V4 = Get(a, start, t + 4 * team, n, pad);
        s.V5 = Get(a, start, t + 5 * team, n, pad);
        s.V6 = Get(a, start, t + 6 * team, n, pad);
        s.V7 = Get(a, start, t + 7 * team, n, pad);
        s.V8 = Get(a, start, t + 8 * team, n, pad);
        s.V9 = Get(a, start, t + 9 * team, n, pad);
        s.V10 = Get(a, start, t + 10 * team, n, pad);
        s.V11 = Get(a, start, t + 11 * team, n, pad);
        return s;
    }

    /// <summary>a[start + t + k T] = s.Vk for the slots whose column is below n.</summary>
    public static void Store(ArrayView<float> a, int start, int t, int team, int n, in RowSlots s)
    {
        Put(a, start, t, n, s.V0);
        Put(a, start, t + team, n, s.V1);
        Put(a, start, t + 2 * team, n, s.V2);
        Put(a, start, t + 3 * team, n, s.V3);
        Put(a, start, t + 4 * team, n, s.V4);
        Put(a, start, t + 5 * team, n, s.V5);
        Put(a, start, t + 6 * team, n, s.V6);
        Put(a, start, t + 7 * team, n, s.V7);
        Put(a, start, t + 8 * team, n, s.V8);
        Put(a, start, t + 9 * team, n, s.V9);
        Put(a, start, t + 10 * team, n, s.V10);
        Put(a, start, t + 11 * team, n, s.V11);
    }
}

/// <summary>
/// The <see cref="RowMath.Slots"/> columns one lane holds, as plain fields so they live in
/// registers (an array would go to local memory). Element-wise ops return new values; the lane's
/// partial reductions (Sum, Max, Dot) are then combined across the team by RowMath.TeamSum/Max.
/// </summary>
internal struct RowSlots
{
    public float V0, V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11;

    public readonly float Sum() => ((V0 + V1) + (V2 + V3)) + ((V4 + V5) + (V6 + V7)) + ((V8 + V9) + (V10 + V11));

    public readonly float Max() =>
        MathF.Max(MathF.Max(MathF.Max(MathF.Max(V0, V1), MathF.Max(V2, V3)), MathF.Max(MathF.Max(V4, V5), MathF.Max(V6, V7))),
                  MathF.Max(MathF.Max(V8, V9), MathF.Max(V10, V11)));

    public readonly float Dot(in RowSlots o) =>
        ((V0 * o.V0 + V1 * o.V1) + (V2 * o.V2 + V3 * o.V3)) + ((V4 * o.V4 + V5 * o.V5) + (V6 * o.V6 + V7 * o.V7))
        + ((V8 * o.V8 + V9 * o.V9) + (V10 * o.V10 + V11 * o.V11));

    /// <summary>this x a + b, element-wise.</summary>
    public readonly RowSlots Fma(float a, float b)
    {
        RowSlots r;
        r.V0 = V0 * a + b; r.V1 = V1 * a + b; r.V2 = V2 * a + b; r.V3 = V3 * a + b;
        r.V4 = V4 * a + b; r.V5 = V5 * a + b; r.V6 = V6 * a + b; r.V7 = V7 * a + b;
        r.V8 = V8 * a + b; r.V9 = V9 * a + b; r.V10 = V10 * a + b; r.V11 = V11 * a + b;
        return r;
    }

    /// <summary>this x a + b, element-wise over three rows of slots.</summary>
    public readonly RowSlots Fma(in RowSlots a, in RowSlots b)
    {
        RowSlots r;
        r.V0 = V0 * a.V0 + b.V0; r.V1 = V1 * a.V1 + b.V1; r.V2 = V2 * a.V2 + b.V2; r.V3 = V3 * a.V3 + b.V3;
        r.V4 = V4 * a.V4 + b.V4; r.V5 = V5 * a.V5 + b.V5; r.V6 = V6 * a.V6 + b.V6; r.V7 = V7 * a.V7 + b.V7;
        r.V8 = V8 * a.V8 + b.V8; r.V9 = V9 * a.V9 + b.V9; r.V10 = V10 * a.V10 + b.V10; r.V11 = V11 * a.V11 + b.V11;
        return r;
    }

    /// <summary>this + a, element-wise.</summary>
    public readonly RowSlots Add(in RowSlots a)
    {
        RowSlots r;
        r.V0 = V0 + a.V0; r.V1 = V1 + a.V1; r.V2 = V2 + a.V2; r.V3 = V3 + a.V3;
        r.V4 = V4 + a.V4; r.V5 = V5 + a.V5; r.V6 = V6 + a.V6; r.V7 = V7 + a.V7;
        r.V8 = V8 + a.V8; r.V9 = V9 + a.V9; r.V10 = V10 + a.V10; r.V11 = V11 + a.V11;
        return r;
    }

    /// <summary>this x a, element-wise.</summary>
    public readonly RowSlots Mul(in RowSlots a)
    {
        RowSlots r;
        r.V0 = V0 * a.V0; r.V1 = V1 * a.V1; r.V2 = V2 * a.V2; r.V3 = V3 * a.V3;
        r.V4 = V4 * a.V4; r.V5 = V5 * a.V5; r.V6 = V6 * a.V6; r.V7 = V7 * a.V7;
        r.V8 = V8 * a.V8; r.V9 = V9 * a.V9; r.V10 = V10 * a.V10; r.V11 = V11 * a.V11;
        return r;
    }

    /// <summary>exp(this - m), element-wise (exp(-inf - m) = 0 for pad slots).</summary>
    public readonly RowSlots ExpMinus(float m)
    {
        RowSlots r;
        r.V0 = MathF.Exp(V0 - m); r.V1 = MathF.Exp(V1 - m); r.V2 = MathF.Exp(V2 - m); r.V3 = MathF.Exp(V3 - m);
        r.V4 = MathF.Exp(V4 - m); r.V5 = MathF.Exp(V5 - m); r.V6 = MathF.Exp(V6 - m); r.V7 = MathF.Exp(V7 - m);
        r.V8 = MathF.Exp(V8 - m); r.V9 = MathF.Exp(V9 - m); r.V10 = MathF.Exp(V10 - m); r.V11 = MathF.Exp(V11 - m);
        return r;
    }

    /// <summary>
    /// this - m in the slots whose column t + k T is below n, 0 in the others: deviations from a
    /// mean that pad slots must not add to (their pad 0 minus the mean would).
    /// </summary>
    public readonly RowSlots Centered(float m, int t, int team, int n)
    {
        RowSlots r;
        r.V0 = t < n ? V0 - m : 0f;
        r.V1 = t + team < n ? V1 - m : 0f;
        r.V2 = t + 2 * team < n ? V2 - m : 0f;
        r.V3 = t + 3 * team < n ? V3 - m : 0f;
        r.V4 = t + 4 * team < n ? V4 - m : 0f;
        r.V5 = t + 5 * team < n ? V5 - m : 0f;
        r.V6 = t + 6 * team < n ? V6 - m : 0f;
        r.V7 = t + 7 * team < n ? V7 - m : 0f;
        r.V8 = t + 8 * team < n ? V8 - m : 0f;
        r.V9 = t + 9 * team < n ? V9 - m : 0f;
        r.V10 = t + 10 * team < n ? V10 - m : 0f;
        r.V11 = t + 11 * team < n ? V11 - m : 0f;
        return r;
    }
}
