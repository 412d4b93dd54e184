using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// An 8 x 8 block of floats transposed through eight AVX registers: the building block of every
/// transposed copy on the CPU (the matmul's packing of a transposed B, the attention's key and
/// value transposes). A scalar transpose does one strided load or store per element; this does
/// eight row loads, 24 shuffles and eight row stores per 64 elements.
/// Callers check <see cref="IsSupported"/> and keep a scalar loop for other CPUs and ragged edges.
/// </summary>
internal static unsafe class Block8x8
{
    public static bool IsSupported => Avx.IsSupported;

    /// <summary>t[c * ldt + r] = x[r * ldx + c] for r, c in 0..7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose(float* x, long ldx, float* t, long ldt)
    {
        var r0 = Avx.LoadVector256(x); var r1 = Avx.LoadVector256(x + ldx);
        var r2 = Avx.LoadVector256(x + 2 * ldx); var r3 = Avx.LoadVector256(x + 3 * ldx);
        var r4 = Avx.LoadVector256(x + 4 * ldx); var r5 = Avx.LoadVector256(x + 5 * ldx);
        var r6 = Avx.LoadVector256(x + 6 * ldx); var r7 = Avx.LoadVector256(x + 7 * ldx);
        // rows a..h: t0 = a0 b0 a1 b1 | a4 b4 a5 b5, t1 = a2 b2 a3 b3 | a6 b6 a7 b7, ...
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        // s0 = a0 b0 c0 d0 | a4 b4 c4 d4, s1 = a1 b1 c1 d1 | a5 b5 c5 d5, ...
        var s0 = Avx.Shuffle(t0, t2, 0x44); var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44); var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44); var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44); var s7 = Avx.Shuffle(t5, t7, 0xEE);
        // column c of the block = the low (c < 4) or high (c >= 4) halves of s(c % 4) and s(c % 4 + 4)
        Avx.Store(t, Avx.Permute2x128(s0, s4, 0x20));
        Avx.Store(t + ldt, Avx.Permute2x128(s1, s5, 0x20));
        Avx.Store(t + 2 * ldt, Avx.Permute2x128(s2, s6, 0x20));
        Avx.Store(t + 3 * ldt, Avx.Permute2x128(s3, s7, 0x20));
        Avx.Store(t + 4 * ldt, Avx.Permute2x128(s0, s4, 0x31));
        Avx.Store(t + 5 * ldt, Avx.Permute2x128(s1, s5, 0x31));
        Avx.Store(t + 6 * ldt, Avx.Permute2x128(s2, s6, 0x31));
        Avx.Store(t + 7 * ldt, Avx.Permute2x128(s3, s7, 0x31));
    }
}
