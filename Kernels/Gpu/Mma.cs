using ILGPU;
using ILGPU.Runtime.Cuda;

namespace ViTScratch.Kernels.Gpu;

// Warp-level tensor-core products for ILGPU kernels: TF32 mma.m16n8k8 and BF16 mma.m16n8k16,
// both D = A B + C with A 16 x K (row-major fragment), B K x 8 (column-major fragment) and C, D
// 16 x 8 in float32. All 32 lanes of a warp call them together; each lane passes the registers
// it holds and gets back its own 4 outputs.
//
// On CUDA (CudaAsm.IsSupported) each is one `mma.sync.aligned` PTX instruction (SASS HMMA).
// Everywhere else (ILGPU's CPU accelerator) a plain path computes the same thing from the same
// registers: each lane fetches, with Warp.Shuffle, the A and B elements its outputs need from the
// lanes that hold them, widens them exactly as the tensor core reads them, and accumulates in
// float32. The fragment layout below is therefore exercised by every simulator test of a kernel
// that uses these helpers: an index mistake in a kernel's fragment loads gives wrong results there.
//
// Fragment layout (PTX ISA, "Matrix Fragments for mma.m16n8k8 / m16n8k16"), with
// g = lane / 4 (the group, 0..7) and t = lane % 4 (the thread in the group, 0..3):
//
//   TF32 m16n8k8: one tf32 per .b32 register (float32 bits, low 13 mantissa bits unused)
//     | register | A (16 x 8): (row, k) | B (8 x 8): (k, col) | C/D (16 x 8): (row, col) |
//     |----------|----------------------|---------------------|--------------------------|
//     | 0        | (g,     t)           | (t,     g)          | (g,     2t)              |
//     | 1        | (g + 8, t)           | (t + 4, g)          | (g,     2t + 1)          |
//     | 2        | (g,     t + 4)       |                     | (g + 8, 2t)              |
//     | 3        | (g + 8, t + 4)       |                     | (g + 8, 2t + 1)          |
//
//   BF16 m16n8k16: two bf16 per .b32 register, the lower k in the low 16 bits
//     | register | A (16 x 16): (row, k)      | B (16 x 8): (k, col)      | C/D: as TF32 |
//     |----------|----------------------------|---------------------------|--------------|
//     | 0        | (g,     2t), (g,     2t+1) | (2t,   g), (2t+1, g)      |              |
//     | 1        | (g + 8, 2t), (g + 8, 2t+1) | (2t+8, g), (2t+9, g)      |              |
//     | 2        | (g,   2t+8), (g,   2t+9)   |                           |              |
//     | 3        | (g+8, 2t+8), (g+8, 2t+9)   |                           |              |
//
// So a row of A is spread over the 4 lanes of one group, a column of B likewise, and a lane's
// outputs are two adjacent columns in row g and the same two in row g + 8.
//
// Rounding: TF32 is float32 with a 10-bit mantissa (unit roundoff 2^-11), BF16 float32 with a
// 7-bit mantissa (2^-8). The products of two tf32 (11 x 11 significant bits) or two bf16 (8 x 8)
// are exact in float32, so the only roundings are the inputs' and the float32 accumulation's.
// RoundTf32 reproduces cvt.rna.tf32.f32 (nearest, ties away from zero: what ptxas itself expands
// that instruction to: add 0x1000 to a finite value's bits, clear the low 13), PackBf16 reproduces
// cvt.rn.bf16x2.f32 (nearest, ties to even). The tensor core's own float32 summation order within
// one mma is not specified; the plain path sums k in ascending order, and the tests' error bounds
// hold for any order.
//
// Ref accumulators and uint operands: EmitRef binds each operand to one PTX register, the 4
// accumulators read and written in place (Ref<float>), the operands raw bits (Input<uint>). ILGPU
// passes EmitRef operands through local variables, and in its O1 PTX (generic pointers) ptxas
// keeps them in local memory: a probe kernel with one call has a 40-byte (TF32) / 64-byte (BF16)
// stack frame. Fine for a few calls; a K loop should use MmaRegisters (MmaRegisters.cs), which
// keeps a warp's accumulators in named PTX registers and passes operands by value.
/// <summary>
/// Warp-level tensor-core matrix products (TF32 m16n8k8, BF16 m16n8k16, float32 accumulate) and
/// the input roundings they need, usable inside ILGPU kernels on CUDA and on the CPU accelerator.
/// </summary>
internal static class Mma
{
    /// <summary>
    /// <paramref name="x"/> rounded to TF32 (10-bit mantissa) as cvt.rna.tf32.f32 does: to
    /// nearest, ties away from zero; infinities and NaN pass through unchanged in their top 19 bits.
    /// </summary>
    public static float RoundTf32(float x) => Interop.IntAsFloat(Tf32Bits(x));

    /// <summary>The bits of <see cref="RoundTf32"/>: an mma .tf32 operand.</summary>
    public static uint Tf32Bits(float x)
    {
        uint u = Interop.FloatAsInt(x);
        // Carry into the exponent is right: a value just below a power of two rounds up to it,
        // and the largest finite values round to infinity, as the hardware conversion does.
        if ((u & 0x7F800000u) != 0x7F800000u) u += 0x1000u;
        return u & 0xFFFFE000u;
    }

    /// <summary><paramref name="x"/> rounded to bfloat16 (7-bit mantissa), to nearest, ties to even.</summary>
    public static float RoundBf16(float x) => Bf16ToFloat(Bf16Bits(x));

    /// <summary>The 16 bits of <paramref name="x"/> rounded to bfloat16 (in the low half of the result).</summary>
    public static uint Bf16Bits(float x)
    {
        uint u = Interop.FloatAsInt(x);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;   // NaN: the canonical NaN, as cvt gives
        return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    }

    /// <summary>A bfloat16 (low 16 bits of <paramref name="bits"/>) as a float.</summary>
    public static float Bf16ToFloat(uint bits) => Interop.IntAsFloat(bits << 16);

    /// <summary>
    /// Two floats rounded to bfloat16 and packed as one mma .bf16x2 operand register:
    /// <paramref name="lo"/> (the lower k or column index) in the low half, <paramref name="hi"/>
    /// in the high half. One cvt.rn.bf16x2.f32 on CUDA.
    /// </summary>
    public static uint PackBf16(float lo, float hi)
    {
        if (CudaAsm.IsSupported)
        {
            // cvt.rn.bf16x2.f32 d, a, b puts a in the upper half and b in the lower.
            CudaAsm.Emit("cvt.rn.bf16x2.f32 %0, %1, %2;", out uint packed, hi, lo);
            return packed;
        }
        return Bf16Bits(lo) | (Bf16Bits(hi) << 16);
    }

    /// <summary>
    /// D = A B + C for one 16 x 8 x 8 TF32 tile (mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32):
    /// <paramref name="a0"/>..<paramref name="a3"/> and <paramref name="b0"/>, <paramref name="b1"/> are
    /// this lane's A and B registers (tf32 bits, <see cref="Tf32Bits"/>), <paramref name="c0"/>..
    /// <paramref name="c3"/> its accumulators, updated in place. Layout: the table in Mma.cs.
    /// All 32 lanes of the warp must call it together.
    /// </summary>
    public static void Tf32(ref float c0, ref float c1, ref float c2, ref float c3,
        uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> d0 = c0, d1 = c1, d2 = c2, d3 = c3;
            Input<uint> ia0 = a0, ia1 = a1, ia2 = a2, ia3 = a3, ib0 = b0, ib1 = b1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};",
                ref d0, ref d1, ref d2, ref d3, ref ia0, ref ia1, ref ia2, ref ia3, ref ib0, ref ib1);
            c0 = d0.Value; c1 = d1.Value; c2 = d2.Value; c3 = d3.Value;
            return;
        }
        Tf32Emulated(ref c0, ref c1, ref c2, ref c3, a0, a1, a2, a3, b0, b1);
    }

    // The plain path of Tf32.
    private static void Tf32Emulated(ref float c0, ref float c1, ref float c2, ref float c3,
        uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int n0 = 2 * t, n1 = 2 * t + 1;   // this lane's two output columns
        // k = 0..3 live in a0, a1 (rows g, g + 8) and b0; k = 4..7 in a2, a3 and b1. A[r][k] is in
        // lane 4 g + k % 4 (the group of row r % 8), B[k][n] in lane 4 n + k % 4.
        for (int k = 0; k < 4; k++)
        {
            float aTop = Tf32Operand(Warp.Shuffle(a0, 4 * g + k)), aBottom = Tf32Operand(Warp.Shuffle(a1, 4 * g + k));
            float bLeft = Tf32Operand(Warp.Shuffle(b0, 4 * n0 + k)), bRight = Tf32Operand(Warp.Shuffle(b0, 4 * n1 + k));
            c0 += aTop * bLeft; c1 += aTop * bRight; c2 += aBottom * bLeft; c3 += aBottom * bRight;
        }
        for (int k = 0; k < 4; k++)
        {
            float aTop = Tf32Operand(Warp.Shuffle(a2, 4 * g + k)), aBottom = Tf32Operand(Warp.Shuffle(a3, 4 * g + k));
            float bLeft = Tf32Operand(Warp.Shuffle(b1, 4 * n0 + k)), bRight = Tf32Operand(Warp.Shuffle(b1, 4 * n1 + k));
            c0 += aTop * bLeft; c1 += aTop * bRight; c2 += aBottom * bLeft; c3 += aBottom * bRight;
        }
    }

    /// <summary>
    /// D = A B + C for one 16 x 8 x 16 BF16 tile (mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32):
    /// registers as <see cref="Tf32"/>, each A and B register holding two bfloat16
    /// (<see cref="PackBf16"/>). Layout: the table in Mma.cs. All 32 lanes must call it together.
    /// </summary>
    public static void Bf16(ref float c0, ref float c1, ref float c2, ref float c3,
        uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> d0 = c0, d1 = c1, d2 = c2, d3 = c3;
            Input<uint> ia0 = a0, ia1 = a1, ia2 = a2, ia3 = a3, ib0 = b0, ib1 = b1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};",
                ref d0, ref d1, ref d2, ref d3, ref ia0, ref ia1, ref ia2, ref ia3, ref ib0, ref ib1);
            c0 = d0.Value; c1 = d1.Value; c2 = d2.Value; c3 = d3.Value;
            return;
        }
        Bf16Emulated(ref c0, ref c1, ref c2, ref c3, a0, a1, a2, a3, b0, b1);
    }

    // The plain path of Bf16.
    private static void Bf16Emulated(ref float c0, ref float c1, ref float c2, ref float c3,
        uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int n0 = 2 * t, n1 = 2 * t + 1;
        // k = 2j, 2j + 1 (j = 0..3) are the two halves of a0, a1 (rows g, g + 8) and b0 in lane
        // 4 g + j (A) and 4 n + j (B); k = 8 + 2j, 9 + 2j those of a2, a3 and b1.
        for (int j = 0; j < 4; j++)
            Bf16Pair(ref c0, ref c1, ref c2, ref c3, Warp.Shuffle(a0, 4 * g + j), Warp.Shuffle(a1, 4 * g + j),
                Warp.Shuffle(b0, 4 * n0 + j), Warp.Shuffle(b0, 4 * n1 + j));
        for (int j = 0; j < 4; j++)
            Bf16Pair(ref c0, ref c1, ref c2, ref c3, Warp.Shuffle(a2, 4 * g + j), Warp.Shuffle(a3, 4 * g + j),
                Warp.Shuffle(b1, 4 * n0 + j), Warp.Shuffle(b1, 4 * n1 + j));
    }

    // The tensor core reads a .tf32 operand's sign, exponent and top 10 mantissa bits only.
    private static float Tf32Operand(uint bits) => Interop.IntAsFloat(bits & 0xFFFFE000u);

    // Two k steps (the low half, then the high half of each register) of the plain BF16 path.
    private static void Bf16Pair(ref float c0, ref float c1, ref float c2, ref float c3, uint aTop, uint aBottom, uint bLeft, uint bRight)
    {
        c0 += Bf16ToFloat(aTop & 0xFFFFu) * Bf16ToFloat(bLeft & 0xFFFFu);
        c1 += Bf16ToFloat(aTop & 0xFFFFu) * Bf16ToFloat(bRight & 0xFFFFu);
        c2 += Bf16ToFloat(aBottom & 0xFFFFu) * Bf16ToFloat(bLeft & 0xFFFFu);
        c3 += Bf16ToFloat(aBottom & 0xFFFFu) * Bf16ToFloat(bRight & 0xFFFFu);
        c0 += Bf16ToFloat(aTop >> 16) * Bf16ToFloat(bLeft >> 16);
        c1 += Bf16ToFloat(aTop >> 16) * Bf16ToFloat(bRight >> 16);
        c2 += Bf16ToFloat(aBottom >> 16) * Bf16ToFloat(bLeft >> 16);
        c3 += Bf16ToFloat(aBottom >> 16) * Bf16ToFloat(bRight >> 16);
    }
}
