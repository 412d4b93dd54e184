using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// GELU in the exact erf form: gelu(x) = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, and
/// gelu'(x) = Phi(x) + x * phi(x) with phi the standard normal density. Vectorised with the same
/// erf polynomial as <see cref="Erf"/>, on Vector512 with AVX-512, Vector256 with AVX2 (or
/// where the wider type is not accelerated); the forward's ragged tail is scalar, the backward's
/// goes through the vector code padded (see <see cref="BackwardWithSum"/>).
/// </summary>
internal static class Gelu
{
    private const float InvSqrt2 = 0.70710678118654752f;
    private const float InvSqrt2Pi = 0.39894228040143268f;

    public static void Forward(SimdPath path, ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (path == SimdPath.Vector512)
            for (; i <= n - 16; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref xr, (nuint)i);
                Vector512.StoreUnsafe(v * Phi(v, out _), ref yr, (nuint)i);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i <= n - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref xr, (nuint)i);
                Vector256.StoreUnsafe(v * Phi(v, out _), ref yr, (nuint)i);
            }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref xr, i);
            Unsafe.Add(ref yr, i) = v * 0.5f * (1f + Erf.Of(v * InvSqrt2));
        }
    }

    /// <summary>dx += dy * gelu'(x).</summary>
    public static void Backward(SimdPath path, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) =>
        BackwardWithSum(path, x, dy, dx, accumulate: true, Span<float>.Empty);

    /// <summary>
    /// t = dy * gelu'(x); dx (=|+=) t; and colSum += t when colSum is not empty (the bias gradient's
    /// column sums of the fused bias + GELU backward, which spares the Linear's backward a second
    /// read of dx). The `+=` form rounds dx with one fused multiply-add.
    /// Elements past the last whole vector go through the vector code as well (zero-padded), so an
    /// element's result does not depend on where its row or its thread's chunk ends: the fused
    /// kernel, which walks 64-column blocks, gives the same bits as this over a whole buffer.
    /// </summary>
    public static void BackwardWithSum(SimdPath path, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, bool accumulate, Span<float> colSum)
    {
        int n = x.Length, i = 0;
        bool sum = !colSum.IsEmpty;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float gr = ref MemoryMarshal.GetReference(dy);
        ref float dr = ref MemoryMarshal.GetReference(dx);
        ref float sr = ref MemoryMarshal.GetReference(colSum);
        int width = path == SimdPath.Vector512 ? 16 : Vector256.IsHardwareAccelerated ? 8 : 0;
        if (width == 16)
            for (; i <= n - 16; i += 16) Step512(ref xr, ref gr, ref dr, ref sr, (nuint)i, accumulate, sum);
        else if (width == 8)
            for (; i <= n - 8; i += 8) Step256(ref xr, ref gr, ref dr, ref sr, (nuint)i, accumulate, sum);
        if (width > 0 && i < n)
        {
            // The ragged end, padded to one vector.
            int rest = n - i;
            Span<float> tx = stackalloc float[16], tg = stackalloc float[16], td = stackalloc float[16], ts = stackalloc float[16];
            tx.Clear(); tg.Clear(); td.Clear(); ts.Clear();
            x[i..].CopyTo(tx);
            dy[i..].CopyTo(tg);
            if (accumulate) dx.Slice(i, rest).CopyTo(td);
            if (sum) colSum.Slice(i, rest).CopyTo(ts);
            if (width == 16) Step512(ref tx[0], ref tg[0], ref td[0], ref ts[0], 0, accumulate, sum);
            else Step256(ref tx[0], ref tg[0], ref td[0], ref ts[0], 0, accumulate, sum);
            td[..rest].CopyTo(dx[i..]);
            if (sum) ts[..rest].CopyTo(colSum[i..]);
            return;
        }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref xr, i);
            float d = 0.5f * (1f + Erf.Of(v * InvSqrt2)) + v * InvSqrt2Pi * MathF.Exp(-0.5f * v * v);
            float t = d * Unsafe.Add(ref gr, i);
            Unsafe.Add(ref dr, i) = accumulate ? Unsafe.Add(ref dr, i) + t : t;
            if (sum) Unsafe.Add(ref sr, i) += t;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step512(ref float xr, ref float gr, ref float dr, ref float sr, nuint i, bool accumulate, bool sum)
    {
        var v = Vector512.LoadUnsafe(ref xr, i);
        var phi = Phi(v, out var gauss);
        var d = Vector512.FusedMultiplyAdd(v * Vector512.Create(InvSqrt2Pi), gauss, phi);
        var g = Vector512.LoadUnsafe(ref gr, i);
        var t = d * g;
        Vector512.StoreUnsafe(accumulate ? Vector512.FusedMultiplyAdd(d, g, Vector512.LoadUnsafe(ref dr, i)) : t, ref dr, i);
        if (sum) Vector512.StoreUnsafe(Vector512.LoadUnsafe(ref sr, i) + t, ref sr, i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step256(ref float xr, ref float gr, ref float dr, ref float sr, nuint i, bool accumulate, bool sum)
    {
        var v = Vector256.LoadUnsafe(ref xr, i);
        var phi = Phi(v, out var gauss);
        var d = Vector256.FusedMultiplyAdd(v * Vector256.Create(InvSqrt2Pi), gauss, phi);
        var g = Vector256.LoadUnsafe(ref gr, i);
        var t = d * g;
        Vector256.StoreUnsafe(accumulate ? Vector256.FusedMultiplyAdd(d, g, Vector256.LoadUnsafe(ref dr, i)) : t, ref dr, i);
        if (sum) Vector256.StoreUnsafe(Vector256.LoadUnsafe(ref sr, i) + t, ref sr, i);
    }

    // Phi(v) = (1 + erf(v / sqrt 2)) / 2 with the erf polynomial, lane by lane. The erf needs
    // exp(-z^2) with z = v / sqrt 2, which is exp(-v^2 / 2): the unnormalised normal density that
    // the backward pass needs too, so it comes back in gauss instead of being computed twice.
    // Inlined on purpose: as a call, the JIT passed the vectors through the stack and the call
    // and spills cost as much as the arithmetic (GELU forward 0.39 G elements/s on one Zen 3 core).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Phi(Vector512<float> v, out Vector512<float> gauss)
    {
        var z = v * Vector512.Create(InvSqrt2);
        var az = Vector512.Abs(z);
        var t = Vector512<float>.One / Vector512.FusedMultiplyAdd(Vector512.Create(Erf.P), az, Vector512<float>.One);
        var poly = Vector512.FusedMultiplyAdd(Vector512.Create(Erf.A5), t, Vector512.Create(Erf.A4));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(Erf.A3));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(Erf.A2));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(Erf.A1));
        poly *= t;
        gauss = Simd.Exp(-(az * az));
        var erfAbs = Vector512.FusedMultiplyAdd(-poly, gauss, Vector512<float>.One);
        var erf = Vector512.ConditionalSelect(Vector512.LessThan(z, Vector512<float>.Zero), -erfAbs, erfAbs);
        return Vector512.FusedMultiplyAdd(Vector512.Create(0.5f), erf, Vector512.Create(0.5f));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Phi(Vector256<float> v, out Vector256<float> gauss)
    {
        var z = v * Vector256.Create(InvSqrt2);
        var az = Vector256.Abs(z);
        var t = Vector256<float>.One / Vector256.FusedMultiplyAdd(Vector256.Create(Erf.P), az, Vector256<float>.One);
        var poly = Vector256.FusedMultiplyAdd(Vector256.Create(Erf.A5), t, Vector256.Create(Erf.A4));
        poly = Vector256.FusedMultiplyAdd(poly, t, Vector256.Create(Erf.A3));
        poly = Vector256.FusedMultiplyAdd(poly, t, Vector256.Create(Erf.A2));
        poly = Vector256.FusedMultiplyAdd(poly, t, Vector256.Create(Erf.A1));
        poly *= t;
        gauss = Simd.Exp(-(az * az));
        var erfAbs = Vector256.FusedMultiplyAdd(-poly, gauss, Vector256<float>.One);
        var erf = Vector256.ConditionalSelect(Vector256.LessThan(z, Vector256<float>.Zero), -erfAbs, erfAbs);
        return Vector256.FusedMultiplyAdd(Vector256.Create(0.5f), erf, Vector256.Create(0.5f));
    }
}
