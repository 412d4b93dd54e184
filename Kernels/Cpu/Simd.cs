using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// Span-level SIMD loops used by the CPU kernels: Vector512 or Vector256 as the caller's
/// <see cref="SimdPath"/> says (the backend's width), then a scalar tail for the ragged end. Every loop here is one pass over memory.
/// </summary>
internal static class Simd
{
    /// <summary>y[i] = x[i] + alpha * b[i].</summary>
    public static void AddScaled(SimdPath path, ReadOnlySpan<float> x, ReadOnlySpan<float> b, Span<float> y, float alpha)
    {
        int n = y.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float br = ref MemoryMarshal.GetReference(b);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (path == SimdPath.Vector512)
        {
            var a = Vector512.Create(alpha);
            for (; i <= n - 16; i += 16)
                Vector512.StoreUnsafe(Vector512.FusedMultiplyAdd(a, Vector512.LoadUnsafe(ref br, (nuint)i), Vector512.LoadUnsafe(ref xr, (nuint)i)), ref yr, (nuint)i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i <= n - 8; i += 8)
                Vector256.StoreUnsafe(Vector256.FusedMultiplyAdd(a, Vector256.LoadUnsafe(ref br, (nuint)i), Vector256.LoadUnsafe(ref xr, (nuint)i)), ref yr, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) = Unsafe.Add(ref xr, i) + alpha * Unsafe.Add(ref br, i);
    }

    /// <summary>y[i] = x[i] + c.</summary>
    public static void AddConstant(SimdPath path, ReadOnlySpan<float> x, float c, Span<float> y)
    {
        int n = y.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (path == SimdPath.Vector512)
        {
            var cv = Vector512.Create(c);
            for (; i <= n - 16; i += 16) Vector512.StoreUnsafe(Vector512.LoadUnsafe(ref xr, (nuint)i) + cv, ref yr, (nuint)i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var cv = Vector256.Create(c);
            for (; i <= n - 8; i += 8) Vector256.StoreUnsafe(Vector256.LoadUnsafe(ref xr, (nuint)i) + cv, ref yr, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) = Unsafe.Add(ref xr, i) + c;
    }

    /// <summary>y[i] = x[i] * w[i], or y[i] += x[i] * w[i] when accumulating.</summary>
    public static void Mul(SimdPath path, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, bool accumulate)
    {
        int n = y.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float wr = ref MemoryMarshal.GetReference(w);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (path == SimdPath.Vector512)
        {
            for (; i <= n - 16; i += 16)
            {
                var p = Vector512.LoadUnsafe(ref xr, (nuint)i) * Vector512.LoadUnsafe(ref wr, (nuint)i);
                if (accumulate) p += Vector512.LoadUnsafe(ref yr, (nuint)i);
                Vector512.StoreUnsafe(p, ref yr, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - 8; i += 8)
            {
                var p = Vector256.LoadUnsafe(ref xr, (nuint)i) * Vector256.LoadUnsafe(ref wr, (nuint)i);
                if (accumulate) p += Vector256.LoadUnsafe(ref yr, (nuint)i);
                Vector256.StoreUnsafe(p, ref yr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float p = Unsafe.Add(ref xr, i) * Unsafe.Add(ref wr, i);
            Unsafe.Add(ref yr, i) = accumulate ? Unsafe.Add(ref yr, i) + p : p;
        }
    }

    /// <summary>y[i] = alpha * x[i], or y[i] += alpha * x[i] when accumulating.</summary>
    public static void Scale(SimdPath path, ReadOnlySpan<float> x, Span<float> y, float alpha, bool accumulate)
    {
        if (accumulate) { AddScaled(path, y, x, y, alpha); return; }
        int n = y.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (path == SimdPath.Vector512)
        {
            var a = Vector512.Create(alpha);
            for (; i <= n - 16; i += 16) Vector512.StoreUnsafe(a * Vector512.LoadUnsafe(ref xr, (nuint)i), ref yr, (nuint)i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i <= n - 8; i += 8) Vector256.StoreUnsafe(a * Vector256.LoadUnsafe(ref xr, (nuint)i), ref yr, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) = alpha * Unsafe.Add(ref xr, i);
    }

    public static float Sum(SimdPath path, ReadOnlySpan<float> x)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        float s = 0;
        if (path == SimdPath.Vector512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16) acc += Vector512.LoadUnsafe(ref xr, (nuint)i);
            s = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8) acc += Vector256.LoadUnsafe(ref xr, (nuint)i);
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) s += Unsafe.Add(ref xr, i);
        return s;
    }

    /// <summary>
    /// y[i] = a[i] + b[i], and the sum of y summed exactly as <see cref="Sum"/> sums it (same
    /// vectors, same order, same bits): the residual add and the mean of the layernorm after it
    /// in one pass.
    /// </summary>
    public static float AddAndSum(SimdPath path, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        int n = y.Length, i = 0;
        ref float ar = ref MemoryMarshal.GetReference(a);
        ref float br = ref MemoryMarshal.GetReference(b);
        ref float yr = ref MemoryMarshal.GetReference(y);
        float s = 0;
        if (path == SimdPath.Vector512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref ar, (nuint)i) + Vector512.LoadUnsafe(ref br, (nuint)i);
                Vector512.StoreUnsafe(v, ref yr, (nuint)i);
                acc += v;
            }
            s = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref ar, (nuint)i) + Vector256.LoadUnsafe(ref br, (nuint)i);
                Vector256.StoreUnsafe(v, ref yr, (nuint)i);
                acc += v;
            }
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref ar, i) + Unsafe.Add(ref br, i);
            Unsafe.Add(ref yr, i) = v;
            s += v;
        }
        return s;
    }

    /// <summary>
    /// y[i] = x[i] - c, and the sum of y[i]² summed exactly as <see cref="Dot"/>(y, y) sums it:
    /// the two-pass variance's centring and its sum of squares in one pass.
    /// </summary>
    public static float CenterAndSumSquares(SimdPath path, ReadOnlySpan<float> x, float c, Span<float> y)
    {
        int n = y.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        float s = 0;
        if (path == SimdPath.Vector512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            var cv = Vector512.Create(c);
            for (; i <= n - 16; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref xr, (nuint)i) - cv;
                Vector512.StoreUnsafe(v, ref yr, (nuint)i);
                acc = Vector512.FusedMultiplyAdd(v, v, acc);
            }
            s = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            var cv = Vector256.Create(c);
            for (; i <= n - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref xr, (nuint)i) - cv;
                Vector256.StoreUnsafe(v, ref yr, (nuint)i);
                acc = Vector256.FusedMultiplyAdd(v, v, acc);
            }
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref xr, i) - c;
            Unsafe.Add(ref yr, i) = v;
            s += v * v;
        }
        return s;
    }

    public static float Dot(SimdPath path, ReadOnlySpan<float> x, ReadOnlySpan<float> w)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float wr = ref MemoryMarshal.GetReference(w);
        float s = 0;
        if (path == SimdPath.Vector512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref xr, (nuint)i), Vector512.LoadUnsafe(ref wr, (nuint)i), acc);
            s = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref xr, (nuint)i), Vector256.LoadUnsafe(ref wr, (nuint)i), acc);
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) s += Unsafe.Add(ref xr, i) * Unsafe.Add(ref wr, i);
        return s;
    }

    public static float Max(SimdPath path, ReadOnlySpan<float> x)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        float m = float.NegativeInfinity;
        if (path == SimdPath.Vector512 && n >= 16)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; i <= n - 16; i += 16) acc = Vector512.Max(acc, Vector512.LoadUnsafe(ref xr, (nuint)i));
            for (int j = 0; j < 16; j++) m = MathF.Max(m, acc[j]);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - 8; i += 8) acc = Vector256.Max(acc, Vector256.LoadUnsafe(ref xr, (nuint)i));
            for (int j = 0; j < 8; j++) m = MathF.Max(m, acc[j]);
        }
        for (; i < n; i++) m = MathF.Max(m, Unsafe.Add(ref xr, i));
        return m;
    }

    /// <summary>y[i] = exp(x[i] - shift); returns the sum of y.</summary>
    public static float ExpShifted(SimdPath path, ReadOnlySpan<float> x, float shift, Span<float> y)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        float s = 0;
        if (path == SimdPath.Vector512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            var sh = Vector512.Create(shift);
            for (; i <= n - 16; i += 16)
            {
                var e = Exp(Vector512.LoadUnsafe(ref xr, (nuint)i) - sh);
                Vector512.StoreUnsafe(e, ref yr, (nuint)i);
                acc += e;
            }
            s = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            var sh = Vector256.Create(shift);
            for (; i <= n - 8; i += 8)
            {
                var e = Exp(Vector256.LoadUnsafe(ref xr, (nuint)i) - sh);
                Vector256.StoreUnsafe(e, ref yr, (nuint)i);
                acc += e;
            }
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            float e = MathF.Exp(Unsafe.Add(ref xr, i) - shift);
            Unsafe.Add(ref yr, i) = e;
            s += e;
        }
        return s;
    }

    // exp on 8 or 16 lanes at once, in float. .NET's Vector256.Exp/Vector512.Exp widen every lane
    // to double for their polynomial; this is the classic Cephes expf, all in float: x = n ln2 + r
    // with |r| <= ln2 / 2 (ln2 split in two parts so n ln2 is exact), e^r by a degree-7
    // polynomial, then 2^n built directly in the exponent bits. Benchmarks/ExpBenchmarks.cs: 0.82x
    // the time of Vector256.Exp on the Zen 3 development machine (inlined; 1.0x when it was not,
    // so keep AggressiveInlining). Relative error below 1.5e-7 over the float range
    // (Tests/Cpu/SimdExpTests.cs); inputs below ln(2^-126) give 0 (no denormals), above
    // ln(FLT_MAX) +inf, and NaN stays NaN.
    private const float ExpHi = 88.72283f, ExpLo = -87.33654f, Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f;
    private const float E0 = 1.9875691500E-4f, E1 = 1.3981999507E-3f, E2 = 8.3334519073E-3f,
        E3 = 4.1665795894E-2f, E4 = 1.6666665459E-1f, E5 = 5.0000001201E-1f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var xc = Vector256.MinNative(Vector256.MaxNative(x, Vector256.Create(ExpLo)), Vector256.Create(ExpHi));
        var n = Vector256.Round(xc * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), xc);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.Create(E0);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r) + Vector256<float>.One;
        // 2^n as two factors: n reaches 128 near the top of the range and -126 at the bottom,
        // where a single exponent field would overflow or fall into the denormals.
        // n is a whole number in [-127, 128] here (x was clamped), so the plain conversion is exact;
        // ConvertToInt32 would add five instructions per vector to saturate out-of-range lanes.
        var ni = Vector256.ConvertToInt32Native(n);
        var half = ni >> 1;
        var e = p * ((half + Vector256.Create(127)) << 23).AsSingle() * ((ni - half + Vector256.Create(127)) << 23).AsSingle();
        e = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(ExpHi)), Vector256.Create(float.PositiveInfinity), e);
        e = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(ExpLo)), Vector256<float>.Zero, e);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), e, x); // NaN lanes pass through
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var xc = Vector512.MinNative(Vector512.MaxNative(x, Vector512.Create(ExpLo)), Vector512.Create(ExpHi));
        var n = Vector512.Round(xc * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), xc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.Create(E0);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        // 2^n as two factors: n reaches 128 near the top of the range and -126 at the bottom,
        // where a single exponent field would overflow or fall into the denormals.
        var ni = Vector512.ConvertToInt32Native(n);
        var half = ni >> 1;
        var e = p * ((half + Vector512.Create(127)) << 23).AsSingle() * ((ni - half + Vector512.Create(127)) << 23).AsSingle();
        e = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(ExpHi)), Vector512.Create(float.PositiveInfinity), e);
        e = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(ExpLo)), Vector512<float>.Zero, e);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), e, x);
    }

    // exp(x) for x <= 88 (in the attention forward, x = score - row max <= 0), bit for bit what Exp
    // gives there, in 7 fewer instructions of about 27. With no input near the top of the range,
    // the clamp at ExpHi and the overflow select go, and 2^n is one factor: n = round(x log2 e) is
    // in [-126, 127], a normal float's exponent, and p · 2^n rounds once, from the same exact
    // product as p · 2^half · 2^(n - half), whose first factor never leaves the normal range
    // (half >= -63). Tests/Cpu/SimdExpTests.cs compares the two over every 7th float below 88.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpBelow88(Vector256<float> x)
    {
        var xc = Vector256.MaxNative(x, Vector256.Create(ExpLo));
        var n = Vector256.Round(xc * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), xc);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.Create(E0);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r) + Vector256<float>.One;
        var e = p * ((Vector256.ConvertToInt32Native(n) + Vector256.Create(127)) << 23).AsSingle();
        e = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(ExpLo)), Vector256<float>.Zero, e);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), e, x); // NaN lanes pass through
    }

    /// <summary>As the Vector256 version: exp(x) for x &lt;= 88, the same bits as <see cref="Exp(Vector512{float})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpBelow88(Vector512<float> x)
    {
        var xc = Vector512.MaxNative(x, Vector512.Create(ExpLo));
        var n = Vector512.Round(xc * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), xc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.Create(E0);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        var e = p * ((Vector512.ConvertToInt32Native(n) + Vector512.Create(127)) << 23).AsSingle();
        e = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(ExpLo)), Vector512<float>.Zero, e);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), e, x);
    }
}
