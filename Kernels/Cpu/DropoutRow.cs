using System.Runtime.Intrinsics;

namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// A run of the dropout mask, vectorised: dst[j] = KernelMath.DropoutKeep(seed, index0 + j, p) ? keepScale : 0.
/// The hash is integer arithmetic (xor, shift, 32-bit multiply) and the final 24-bit value
/// converts to float exactly, so every lane reproduces the scalar <see cref="KernelMath.DropoutKeep"/>
/// bit for bit; the GPU backend draws the very same mask.
/// </summary>
internal static unsafe class DropoutRow
{
    public static void Fill(SimdPath path, uint seed, uint index0, int n, float p, float keepScale, float* dst)
    {
        uint seedMix = KernelMath.Mix(seed + 0x7F4A7C15u);
        int j = 0;
        if (path == SimdPath.Vector512)
        {
            var idx = Vector512.Create(index0) + Vector512<uint>.Indices;
            var step = Vector512.Create(16u);
            var s = Vector512.Create(seedMix);
            for (; j <= n - 16; j += 16, idx += step)
            {
                var h = Mix(idx * Vector512.Create(0x9E3779B9u) ^ s);
                var u = Vector512.ConvertToSingle(Vector512.ShiftRightLogical(h, 8).AsInt32()) * Vector512.Create(1.0f / 16777216.0f);
                var keep = Vector512.GreaterThanOrEqual(u, Vector512.Create(p));
                Vector512.Store(Vector512.ConditionalSelect(keep, Vector512.Create(keepScale), Vector512<float>.Zero), dst + j);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var idx = Vector256.Create(index0) + Vector256<uint>.Indices;
            var step = Vector256.Create(8u);
            var s = Vector256.Create(seedMix);
            for (; j <= n - 8; j += 8, idx += step)
            {
                var h = Mix(idx * Vector256.Create(0x9E3779B9u) ^ s);
                var u = Vector256.ConvertToSingle(Vector256.ShiftRightLogical(h, 8).AsInt32()) * Vector256.Create(1.0f / 16777216.0f);
                var keep = Vector256.GreaterThanOrEqual(u, Vector256.Create(p));
                Vector256.Store(Vector256.ConditionalSelect(keep, Vector256.Create(keepScale), Vector256<float>.Zero), dst + j);
            }
        }
        for (; j < n; j++) dst[j] = KernelMath.DropoutKeep(seed, index0 + (uint)j, p) ? keepScale : 0f;
    }

    // KernelMath.Mix, lane by lane.
    private static Vector512<uint> Mix(Vector512<uint> x)
    {
        x ^= Vector512.ShiftRightLogical(x, 16);
        x *= Vector512.Create(0x7FEB352Du);
        x ^= Vector512.ShiftRightLogical(x, 15);
        x *= Vector512.Create(0x846CA68Bu);
        x ^= Vector512.ShiftRightLogical(x, 16);
        return x;
    }

    private static Vector256<uint> Mix(Vector256<uint> x)
    {
        x ^= Vector256.ShiftRightLogical(x, 16);
        x *= Vector256.Create(0x7FEB352Du);
        x ^= Vector256.ShiftRightLogical(x, 15);
        x *= Vector256.Create(0x846CA68Bu);
        x ^= Vector256.ShiftRightLogical(x, 16);
        return x;
    }
}
