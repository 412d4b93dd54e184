using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace ViTScratch.Kernels.Gpu;

// Warp-level tensor-core fragments for the tensor-core attention (AttentionTensorCoreKernels.cs),
// built on Mma.cs (the instructions, the roundings, and the fragment table this file relies on):
// the operand loads from shared memory, the re-layout of an accumulator into an A operand, and one
// "k16 step" that is two TF32 m16n8k8 or one BF16 m16n8k16.
//
// Lane roles (Mma.cs's table): g = lane / 4, t = lane % 4. TF32 m16n8k8: a = A[g][t], A[g+8][t],
// A[g][t+4], A[g+8][t+4]; b = B[t][g], B[t+4][g]. BF16 m16n8k16: a = A[g][2t,2t+1],
// A[g+8][2t,2t+1], A[g][2t+8,2t+9], A[g+8][2t+8,2t+9] (two bf16 per register, lower index in the
// low half); b = B[2t,2t+1][g], B[2t+8,2t+9][g]. C = C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1].
//
// One fragment type for both formats. A sum over k does not care in which order its terms are
// paired, so the kernels may call any bijection of the physical k slots "k"; what matters is
// that A and B use the same one. Frag/BFrag hold the TF32 shape of an 8-wide k block ("logical
// k" t and t + 4 in lane t), as floats already rounded to the format. A k16 step is two such
// blocks, Lo (logical k 0..7) and Hi (8..15):
//   TF32: two m16n8k8, Lo then Hi.
//   BF16: one m16n8k16 whose physical slots 2t, 2t+1, 2t+8, 2t+9 carry logical t, t+4, 8+t, 12+t
//         (a bijection of 0..15), i.e. a0 = pack(Lo.A0, Lo.A2), a1 = pack(Lo.A1, Lo.A3),
//         a2 = pack(Hi.A0, Hi.A2), a3 = pack(Hi.A1, Hi.A3); b0 = pack(Lo.B0, Lo.B1), b1 = pack(Hi.B0, Hi.B1).
// So every load below is written once, in the TF32 shape, and serves both formats.
//
// P re-laid from accumulator to A operand, without shuffles: the product S = Q Kᵀ leaves lane
// (g, t) holding S[g][2t], S[g][2t+1], S[g+8][2t], S[g+8][2t+1] of an 8-key block (c0..c3).
// For P V the keys are k. Choosing logical k t <-> key 2t and t + 4 <-> key 2t + 1 makes that
// accumulator an A operand as it stands: a0 = c0, a1 = c2, a2 = c1, a3 = c3 (AFromAcc), provided
// the B operand (rows of V) is read with the same pairing: b0 = V[2t][n], b1 = V[2t + 1][n]
// (LoadBPaired). The backward re-lays dS and P of its own products the same way.
//
// On CUDA the mma is Mma.Tf32 / Mma.Bf16 (one mma.sync each). Off CUDA (ILGPU's CPU accelerator,
// the tests' simulator) CudaAsm.IsSupported is false and this file emulates it from the same
// physical registers, following the table, but through a per-warp exchange in shared memory
// (Park) rather than Mma.cs's shuffles: on the simulator each shuffle is a barrier of 32 CPU
// threads, and with 32 of them per mma the attention tests ran 6x longer. The products of two
// rounded inputs are exact in float32 and the sums are float32, so the emulation differs from a
// tensor core only in the rounding and order of its additions (the error model in
// AttentionTensorCoreKernels.cs). Tests/Gpu/AttentionFragmentTests.cs pins the emulation to the table.
internal static class AttentionFragments
{
    /// <summary>Four floats of one lane: an accumulator c0..c3 or an A operand a0..a3.</summary>
    public struct Frag
    {
        public float A0, A1, A2, A3;
    }

    /// <summary>Two floats of one lane: a B operand b0, b1.</summary>
    public struct BFrag
    {
        public float B0, B1;
    }

    /// <summary>The 64 columns of a 16-row accumulator: eight 16x8 blocks (C4..C7 unused at d = 32).</summary>
    public struct Acc8
    {
        public Frag C0, C1, C2, C3, C4, C5, C6, C7;
    }

    // ---- rounding ------------------------------------------------------------------------------

    /// <summary>x rounded to the mma input format: Mma.RoundTf32 (nearest, ties away, as cvt.rna) or Mma.RoundBf16 (nearest even).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Round(float x, int bf16) => bf16 != 0 ? Gpu.Mma.RoundBf16(x) : Gpu.Mma.RoundTf32(x);

    // Two bf16 (the high halves of two floats already rounded by Round) in one register, lo in the
    // low half: bit moves only (Mma.PackBf16 would round again, through a cvt with an output operand).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Pack(float lo, float hi) => (Interop.FloatAsInt(hi) & 0xFFFF0000u) | (Interop.FloatAsInt(lo) >> 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Lo(uint r) => Interop.IntAsFloat(r << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Hi(uint r) => Interop.IntAsFloat(r & 0xFFFF0000u);

    // ---- operand loads from shared memory (offsets in floats, rows `stride` floats apart) ------

    /// <summary>A operand of the k block at column c0: rows r0 + g, r0 + g + 8 of a row-major tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Frag LoadA(ArrayView<float> sh, int off, int stride, int r0, int c0)
    {
        int lane = Warp.LaneIdx, at = off + (r0 + (lane >> 2)) * stride + c0 + (lane & 3);
        return new Frag { A0 = sh[at], A1 = sh[at + 8 * stride], A2 = sh[at + 4], A3 = sh[at + 8 * stride + 4] };
    }

    /// <summary>B operand with B[k][n] = T[n0 + n][k0 + k]: the tile's rows are B's columns (K in Q Kᵀ).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BFrag LoadBt(ArrayView<float> sh, int off, int stride, int n0, int k0)
    {
        int lane = Warp.LaneIdx, at = off + (n0 + (lane >> 2)) * stride + k0 + (lane & 3);
        return new BFrag { B0 = sh[at], B1 = sh[at + 4] };
    }

    /// <summary>
    /// B operand with B[k][n] = T[k0 + key(k)][n0 + n] under the accumulator pairing (logical k t
    /// is row 2t, t + 4 is row 2t + 1): the partner of <see cref="AFromAcc"/> (V in P V).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BFrag LoadBPaired(ArrayView<float> sh, int off, int stride, int k0, int n0)
    {
        int lane = Warp.LaneIdx, at = off + (k0 + 2 * (lane & 3)) * stride + n0 + (lane >> 2);
        return new BFrag { B0 = sh[at], B1 = sh[at + stride] };
    }

    /// <summary>An accumulator (values already rounded to the format) as the A operand of the next product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Frag AFromAcc(Frag c) => new() { A0 = c.A0, A1 = c.A2, A2 = c.A1, A3 = c.A3 };

    // ---- the k16 step --------------------------------------------------------------------------

    /// <summary>c += A B over 16 logical k: (aLo, bLo) for k 0..7, (aHi, bHi) for k 8..15.</summary>
    // Values in and out, no `ref`: ILGPU turns a local passed by reference into local memory.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Frag Mma(Frag c, Frag aLo, BFrag bLo, Frag aHi, BFrag bHi, int bf16, ArrayView<uint> xch)
    {
        if (bf16 != 0)
            return MmaBf16(c, Pack(aLo.A0, aLo.A2), Pack(aLo.A1, aLo.A3), Pack(aHi.A0, aHi.A2), Pack(aHi.A1, aHi.A3),
                Pack(bLo.B0, bLo.B1), Pack(bHi.B0, bHi.B1), xch);
        return Tf32(Tf32(c, aLo, bLo, xch), aHi, bHi, xch);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag Tf32(Frag c, Frag a, BFrag b, ArrayView<uint> xch) =>
        MmaTf32(c, Interop.FloatAsInt(a.A0), Interop.FloatAsInt(a.A1), Interop.FloatAsInt(a.A2), Interop.FloatAsInt(a.A3),
            Interop.FloatAsInt(b.B0), Interop.FloatAsInt(b.B1), xch);

    /// <summary>One m16n8k8 TF32 mma on the physical registers of the PTX layout (the header's table).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Frag MmaTf32(Frag c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> xch) =>
        CudaAsm.IsSupported ? AsmTf32(c, a0, a1, a2, a3, b0, b1) : EmulateTf32(c, a0, a1, a2, a3, b0, b1, xch);

    /// <summary>One m16n8k16 BF16 mma on the physical (packed) registers of the PTX layout.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Frag MmaBf16(Frag c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> xch) =>
        CudaAsm.IsSupported ? AsmBf16(c, a0, a1, a2, a3, b0, b1) : EmulateBf16(c, a0, a1, a2, a3, b0, b1, xch);

    // On CUDA: Mma.cs's instruction (one mma.sync each).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag AsmTf32(Frag c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        float c0 = c.A0, c1 = c.A1, c2 = c.A2, c3 = c.A3;
        Gpu.Mma.Tf32(ref c0, ref c1, ref c2, ref c3, a0, a1, a2, a3, b0, b1);
        return new Frag { A0 = c0, A1 = c1, A2 = c2, A3 = c3 };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Frag AsmBf16(Frag c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        float c0 = c.A0, c1 = c.A1, c2 = c.A2, c3 = c.A3;
        Gpu.Mma.Bf16(ref c0, ref c1, ref c2, ref c3, a0, a1, a2, a3, b0, b1);
        return new Frag { A0 = c0, A1 = c1, A2 = c2, A3 = c3 };
    }

    // The emulation's exchange: each lane parks its six registers in shared memory (its warp's
    // 32 x 6 slots of `xch`), the warp syncs, and each lane reads the A rows and B columns it
    // needs from their owner lanes. Two warp barriers per mma instead of 32 shuffles: on the
    // simulator every shuffle is a barrier of 32 CPU threads, and shuffles made the tests 10x
    // slower. The kernel allocates `xch` once (ExchangeSlots); ILGPU keeps the allocation when it
    // compiles for CUDA, where it is never touched (3 KB of a group of 4 warps; the registers, not
    // shared memory, bound these kernels' occupancy).
    /// <summary>uints of the emulation's exchange for a group of <paramref name="warps"/> warps.</summary>
    public static int ExchangeSlots(int warps) => 6 * GpuKernels.WarpSize * warps;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Park(ArrayView<uint> x, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        int warp = 6 * GpuKernels.WarpSize * Warp.WarpIdx, at = warp + 6 * Warp.LaneIdx;
        x[at] = a0; x[at + 1] = a1; x[at + 2] = a2; x[at + 3] = a3; x[at + 4] = b0; x[at + 5] = b1;
        Warp.Barrier();
        return warp;
    }

    // m16n8k8 TF32 from the physical layout: A[g][k] lives in lane 4g + (k & 3) (a0 for k < 4, a2
    // otherwise; row g + 8 in a1, a3); B[k][n] in lane 4n + (k & 3) (b0 for k < 4, b1 otherwise).
    private static Frag EmulateTf32(Frag c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> x)
    {
        int warp = Park(x, a0, a1, a2, a3, b0, b1);
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        for (int k = 0; k < 4; k++)
        {
            int srcA = warp + 6 * (4 * g + k), srcB0 = warp + 6 * (4 * (2 * t) + k), srcB1 = warp + 6 * (4 * (2 * t + 1) + k);
            float x0 = Interop.IntAsFloat(x[srcA]), x1 = Interop.IntAsFloat(x[srcA + 1]);
            float x2 = Interop.IntAsFloat(x[srcA + 2]), x3 = Interop.IntAsFloat(x[srcA + 3]);
            float y00 = Interop.IntAsFloat(x[srcB0 + 4]), y10 = Interop.IntAsFloat(x[srcB0 + 5]);
            float y01 = Interop.IntAsFloat(x[srcB1 + 4]), y11 = Interop.IntAsFloat(x[srcB1 + 5]);
            // k and k + 4 of rows g (x0, x2) and g + 8 (x1, x3), columns 2t (y.0) and 2t + 1 (y.1).
            c.A0 += x0 * y00; c.A0 += x2 * y10;
            c.A1 += x0 * y01; c.A1 += x2 * y11;
            c.A2 += x1 * y00; c.A2 += x3 * y10;
            c.A3 += x1 * y01; c.A3 += x3 * y11;
        }
        Warp.Barrier();   // the slots are read before the next mma parks
        return c;
    }

    // m16n8k16 BF16 from the physical layout: lane 4g + s holds A[g][2s, 2s + 1] (a0),
    // A[g + 8][2s, 2s + 1] (a1), A[g][2s + 8, 2s + 9] (a2), A[g + 8][2s + 8, 2s + 9] (a3); lane
    // 4n + s holds B[2s, 2s + 1][n] (b0) and B[2s + 8, 2s + 9][n] (b1).
    private static Frag EmulateBf16(Frag c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> x)
    {
        int warp = Park(x, a0, a1, a2, a3, b0, b1);
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        for (int s = 0; s < 4; s++)
        {
            int srcA = warp + 6 * (4 * g + s), srcB0 = warp + 6 * (4 * (2 * t) + s), srcB1 = warp + 6 * (4 * (2 * t + 1) + s);
            uint x0 = x[srcA], x1 = x[srcA + 1], x2 = x[srcA + 2], x3 = x[srcA + 3];
            uint y0 = x[srcB0 + 4], y1 = x[srcB0 + 5];   // column 2t
            uint z0 = x[srcB1 + 4], z1 = x[srcB1 + 5];   // column 2t + 1
            c.A0 += Lo(x0) * Lo(y0); c.A0 += Hi(x0) * Hi(y0); c.A0 += Lo(x2) * Lo(y1); c.A0 += Hi(x2) * Hi(y1);
            c.A1 += Lo(x0) * Lo(z0); c.A1 += Hi(x0) * Hi(z0); c.A1 += Lo(x2) * Lo(z1); c.A1 += Hi(x2) * Hi(z1);
            c.A2 += Lo(x1) * Lo(y0); c.A2 += Hi(x1) * Hi(y0); c.A2 += Lo(x3) * Lo(y1); c.A2 += Hi(x3) * Hi(y1);
            c.A3 += Lo(x1) * Lo(z0); c.A3 += Hi(x1) * Hi(z0); c.A3 += Lo(x3) * Lo(z1); c.A3 += Hi(x3) * Hi(z1);
        }
        Warp.Barrier();
        return c;
    }

    // ---- quad reductions (the 4 lanes of a group share rows g and g + 8) -----------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float QuadMax(float x)
    {
        x = MathF.Max(x, Warp.ShuffleXor(x, 1));
        return MathF.Max(x, Warp.ShuffleXor(x, 2));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float QuadSum(float x)
    {
        x += Warp.ShuffleXor(x, 1);
        return x + Warp.ShuffleXor(x, 2);
    }
}
