using ILGPU;
using ILGPU.Runtime.Cuda;

namespace ViTScratch.Kernels.Gpu;

// MmaRegisters: one k step of a warp's 32 x 32 tile = 2 (rows, mi) x 4 (columns, ni) mma tiles of
// 16 x 8, tile number mi * 4 + ni, with the 32 accumulators of a lane kept in registers for the
// whole K loop and no local memory.
//
// Why not Mma.Tf32/Bf16 in a loop: those pass their 4 accumulators through CudaAsm.EmitRef, i.e.
// through local variables, and ptxas keeps them in local memory (a stack frame and about 14 local
// loads and stores per mma) because ILGPU's O1 PTX also addresses global memory through generic
// pointers that could alias them. Here the accumulators are PTX registers named tca0..tca31,
// declared by Clear and named literally in each mma's text, so an mma's only operands from the
// C# side are its A and B registers, passed by value: no output, no local variable. Only Collect,
// once after the K loop, moves the values back into C# through CudaAsm outputs (8 bytes of stack).
// One bank per kernel: the register names are fixed.
//
// On the CPU accelerator the same registers (MmaFragments) are exchanged across the warp and the
// 8 products accumulated in a MmaTiles8, from the fragment layout of Mma.cs. The exchange shuffles
// a lane's whole MmaFragments (one simulated shuffle) from the 3 lanes that hold what k and k + 4
// (BF16: 4 k) need: 12 shuffles per k step for all 8 tiles, where 8 calls of Mma.Tf32 would take
// 256, and the simulator pays a warp-wide barrier for each.
/// <summary>
/// A warp's A and B registers for one k step of its 2 x 4 mma tiles: A{mi}{r} is register r of
/// the A fragment of row tile mi, B{ni}{r} register r of the B fragment of column tile ni (layout:
/// the table in Mma.cs; tf32 bits for TF32, bf16x2 for BF16).
/// </summary>
internal struct MmaFragments
{
    public uint A00, A01, A02, A03, A10, A11, A12, A13;
    public uint B00, B01, B10, B11, B20, B21, B30, B31;
}

/// <summary>
/// Eight 16 x 8 float32 accumulator tiles of one lane (32 floats): the simulator's accumulators of
/// <see cref="MmaRegisters"/>, and on CUDA the values <see cref="MmaRegisters.Collect"/> copies out.
/// </summary>
internal struct MmaTiles8
{
    public float T0C0, T0C1, T0C2, T0C3;
    public float T1C0, T1C1, T1C2, T1C3;
    public float T2C0, T2C1, T2C2, T2C3;
    public float T3C0, T3C1, T3C2, T3C3;
    public float T4C0, T4C1, T4C2, T4C3;
    public float T5C0, T5C1, T5C2, T5C3;
    public float T6C0, T6C1, T6C2, T6C3;
    public float T7C0, T7C1, T7C2, T7C3;
}

/// <summary>
/// A warp's 2 x 4 mma tiles with register-resident accumulators (TF32 m16n8k8 or BF16 m16n8k16).
/// Call <see cref="Clear"/> once at the top of the kernel, a step method per k step, then
/// <see cref="Collect"/> and <see cref="Read"/>. All 32 lanes of the warp call each together.
/// </summary>
internal static class MmaRegisters
{
    private const string Tf32Op = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ";
    private const string Bf16Op = "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 ";
    private const string A0 = ", {%0, %1, %2, %3}, {%4, %5}, ";
    private const string D0 = "{tca0, tca1, tca2, tca3}";
    private const string D1 = "{tca4, tca5, tca6, tca7}";
    private const string D2 = "{tca8, tca9, tca10, tca11}";
    private const string D3 = "{tca12, tca13, tca14, tca15}";
    private const string D4 = "{tca16, tca17, tca18, tca19}";
    private const string D5 = "{tca20, tca21, tca22, tca23}";
    private const string D6 = "{tca24, tca25, tca26, tca27}";
    private const string D7 = "{tca28, tca29, tca30, tca31}";

    /// <summary>Declares the bank's registers and sets all 32 accumulators to 0.</summary>
    public static void Clear(out MmaTiles8 acc)
    {
        acc = default;
        if (CudaAsm.IsSupported)
            CudaAsm.Emit(".reg .f32 tca<32>; mov.f32 tca0, 0f00000000; mov.f32 tca1, 0f00000000; mov.f32 tca2, 0f00000000; mov.f32 tca3, 0f00000000; mov.f32 tca4, 0f00000000; mov.f32 tca5, 0f00000000; mov.f32 tca6, 0f00000000; mov.f32 tca7, 0f00000000; mov.f32 tca8, 0f00000000; mov.f32 tca9, 0f00000000; mov.f32 tca10, 0f00000000; mov.f32 tca11, 0f00000000; mov.f32 tca12, 0f00000000; mov.f32 tca13, 0f00000000; mov.f32 tca14, 0f00000000; mov.f32 tca15, 0f00000000; mov.f32 tca16, 0f00000000; mov.f32 tca17, 0f00000000; mov.f32 tca18, 0f00000000; mov.f32 tca19, 0f00000000; mov.f32 tca20, 0f00000000; mov.f32 tca21, 0f00000000; mov.f32 tca22, 0f00000000; mov.f32 tca23, 0f00000000; mov.f32 tca24, 0f00000000; mov.f32 tca25, 0f00000000; mov.f32 tca26, 0f00000000; mov.f32 tca27, 0f00000000; mov.f32 tca28, 0f00000000; mov.f32 tca29, 0f00000000; mov.f32 tca30, 0f00000000; mov.f32 tca31, 0f00000000;");
    }

    /// <summary>The 8 tiles += A B for one k step (k = 8, tf32 operands).</summary>
    public static void Tf32(ref MmaTiles8 acc, in MmaFragments f)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(Tf32Op + D0 + A0 + D0 + ";", f.A00, f.A01, f.A02, f.A03, f.B00, f.B01);
            CudaAsm.Emit(Tf32Op + D1 + A0 + D1 + ";", f.A00, f.A01, f.A02, f.A03, f.B10, f.B11);
            CudaAsm.Emit(Tf32Op + D2 + A0 + D2 + ";", f.A00, f.A01, f.A02, f.A03, f.B20, f.B21);
            CudaAsm.Emit(Tf32Op + D3 + A0 + D3 + ";", f.A00, f.A01, f.A02, f.A03, f.B30, f.B31);
            CudaAsm.Emit(Tf32Op + D4 + A0 + D4 + ";", f.A10, f.A11, f.A12, f.A13, f.B00, f.B01);
            CudaAsm.Emit(Tf32Op + D5 + A0 + D5 + ";", f.A10, f.A11, f.A12, f.A13, f.B10, f.B11);
            CudaAsm.Emit(Tf32Op + D6 + A0 + D6 + ";", f.A10, f.A11, f.A12, f.A13, f.B20, f.B21);
            CudaAsm.Emit(Tf32Op + D7 + A0 + D7 + ";", f.A10, f.A11, f.A12, f.A13, f.B30, f.B31);
            return;
        }
        Tf32Emulated(ref acc, f);
    }

    /// <summary>The 8 tiles += A B for one k step (k = 16, bf16x2 operands).</summary>
    public static void Bf16(ref MmaTiles8 acc, in MmaFragments f)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(Bf16Op + D0 + A0 + D0 + ";", f.A00, f.A01, f.A02, f.A03, f.B00, f.B01);
            CudaAsm.Emit(Bf16Op + D1 + A0 + D1 + ";", f.A00, f.A01, f.A02, f.A03, f.B10, f.B11);
            CudaAsm.Emit(Bf16Op + D2 + A0 + D2 + ";", f.A00, f.A01, f.A02, f.A03, f.B20, f.B21);
            CudaAsm.Emit(Bf16Op + D3 + A0 + D3 + ";", f.A00, f.A01, f.A02, f.A03, f.B30, f.B31);
            CudaAsm.Emit(Bf16Op + D4 + A0 + D4 + ";", f.A10, f.A11, f.A12, f.A13, f.B00, f.B01);
            CudaAsm.Emit(Bf16Op + D5 + A0 + D5 + ";", f.A10, f.A11, f.A12, f.A13, f.B10, f.B11);
            CudaAsm.Emit(Bf16Op + D6 + A0 + D6 + ";", f.A10, f.A11, f.A12, f.A13, f.B20, f.B21);
            CudaAsm.Emit(Bf16Op + D7 + A0 + D7 + ";", f.A10, f.A11, f.A12, f.A13, f.B30, f.B31);
            return;
        }
        Bf16Emulated(ref acc, f);
    }

    // k and k + 4 (k = 0..3) come from one lane each: registers 0, 1 (rows g, g + 8) and 2, 3 of A
    // in lane 4 g + k, registers 0 and 1 of B in lane 4 n + k (n = 2t, 2t + 1 for this lane). The
    // products are summed in the order k, k + 4 (k = 0..3): the tensor core's order is unspecified.
    private static void Tf32Emulated(ref MmaTiles8 acc, in MmaFragments f)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        for (int k = 0; k < 4; k++)
        {
            var a = Warp.Shuffle(f, 4 * g + k);
            var l = Warp.Shuffle(f, 8 * t + k);       // lane 4 (2t) + k: column 2t
            var r = Warp.Shuffle(f, 8 * t + 4 + k);   // lane 4 (2t + 1) + k: column 2t + 1
            Add(ref acc.T0C0, ref acc.T0C1, ref acc.T0C2, ref acc.T0C3, T(a.A00), T(a.A01), T(l.B00), T(r.B00));
            Add(ref acc.T1C0, ref acc.T1C1, ref acc.T1C2, ref acc.T1C3, T(a.A00), T(a.A01), T(l.B10), T(r.B10));
            Add(ref acc.T2C0, ref acc.T2C1, ref acc.T2C2, ref acc.T2C3, T(a.A00), T(a.A01), T(l.B20), T(r.B20));
            Add(ref acc.T3C0, ref acc.T3C1, ref acc.T3C2, ref acc.T3C3, T(a.A00), T(a.A01), T(l.B30), T(r.B30));
            Add(ref acc.T4C0, ref acc.T4C1, ref acc.T4C2, ref acc.T4C3, T(a.A10), T(a.A11), T(l.B00), T(r.B00));
            Add(ref acc.T5C0, ref acc.T5C1, ref acc.T5C2, ref acc.T5C3, T(a.A10), T(a.A11), T(l.B10), T(r.B10));
            Add(ref acc.T6C0, ref acc.T6C1, ref acc.T6C2, ref acc.T6C3, T(a.A10), T(a.A11), T(l.B20), T(r.B20));
            Add(ref acc.T7C0, ref acc.T7C1, ref acc.T7C2, ref acc.T7C3, T(a.A10), T(a.A11), T(l.B30), T(r.B30));
            Add(ref acc.T0C0, ref acc.T0C1, ref acc.T0C2, ref acc.T0C3, T(a.A02), T(a.A03), T(l.B01), T(r.B01));
            Add(ref acc.T1C0, ref acc.T1C1, ref acc.T1C2, ref acc.T1C3, T(a.A02), T(a.A03), T(l.B11), T(r.B11));
            Add(ref acc.T2C0, ref acc.T2C1, ref acc.T2C2, ref acc.T2C3, T(a.A02), T(a.A03), T(l.B21), T(r.B21));
            Add(ref acc.T3C0, ref acc.T3C1, ref acc.T3C2, ref acc.T3C3, T(a.A02), T(a.A03), T(l.B31), T(r.B31));
            Add(ref acc.T4C0, ref acc.T4C1, ref acc.T4C2, ref acc.T4C3, T(a.A12), T(a.A13), T(l.B01), T(r.B01));
            Add(ref acc.T5C0, ref acc.T5C1, ref acc.T5C2, ref acc.T5C3, T(a.A12), T(a.A13), T(l.B11), T(r.B11));
            Add(ref acc.T6C0, ref acc.T6C1, ref acc.T6C2, ref acc.T6C3, T(a.A12), T(a.A13), T(l.B21), T(r.B21));
            Add(ref acc.T7C0, ref acc.T7C1, ref acc.T7C2, ref acc.T7C3, T(a.A12), T(a.A13), T(l.B31), T(r.B31));
        }
    }

    // k = 2j, 2j + 1 are the low and high halves of registers 0, 1 of A and 0 of B in lane 4 g + j
    // (A) and 4 n + j (B); k = 8 + 2j, 9 + 2j those of registers 2, 3 and 1 in the same lanes.
    private static void Bf16Emulated(ref MmaTiles8 acc, in MmaFragments f)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        for (int j = 0; j < 4; j++)
        {
            var a = Warp.Shuffle(f, 4 * g + j);
            var l = Warp.Shuffle(f, 8 * t + j);
            var r = Warp.Shuffle(f, 8 * t + 4 + j);
            Add(ref acc.T0C0, ref acc.T0C1, ref acc.T0C2, ref acc.T0C3, Lo(a.A00), Lo(a.A01), Lo(l.B00), Lo(r.B00));
            Add(ref acc.T1C0, ref acc.T1C1, ref acc.T1C2, ref acc.T1C3, Lo(a.A00), Lo(a.A01), Lo(l.B10), Lo(r.B10));
            Add(ref acc.T2C0, ref acc.T2C1, ref acc.T2C2, ref acc.T2C3, Lo(a.A00), Lo(a.A01), Lo(l.B20), Lo(r.B20));
            Add(ref acc.T3C0, ref acc.T3C1, ref acc.T3C2, ref acc.T3C3, Lo(a.A00), Lo(a.A01), Lo(l.B30), Lo(r.B30));
            Add(ref acc.T4C0, ref acc.T4C1, ref acc.T4C2, ref acc.T4C3, Lo(a.A10), Lo(a.A11), Lo(l.B00), Lo(r.B00));
            Add(ref acc.T5C0, ref acc.T5C1, ref acc.T5C2, ref acc.T5C3, Lo(a.A10), Lo(a.A11), Lo(l.B10), Lo(r.B10));
            Add(ref acc.T6C0, ref acc.T6C1, ref acc.T6C2, ref acc.T6C3, Lo(a.A10), Lo(a.A11), Lo(l.B20), Lo(r.B20));
            Add(ref acc.T7C0, ref acc.T7C1, ref acc.T7C2, ref acc.T7C3, Lo(a.A10), Lo(a.A11), Lo(l.B30), Lo(r.B30));
            Add(ref acc.T0C0, ref acc.T0C1, ref acc.T0C2, ref acc.T0C3, Hi(a.A00), Hi(a.A01), Hi(l.B00), Hi(r.B00));
            Add(ref acc.T1C0, ref acc.T1C1, ref acc.T1C2, ref acc.T1C3, Hi(a.A00), Hi(a.A01), Hi(l.B10), Hi(r.B10));
            Add(ref acc.T2C0, ref acc.T2C1, ref acc.T2C2, ref acc.T2C3, Hi(a.A00), Hi(a.A01), Hi(l.B20), Hi(r.B20));
            Add(ref acc.T3C0, ref acc.T3C1, ref acc.T3C2, ref acc.T3C3, Hi(a.A00), Hi(a.A01), Hi(l.B30), Hi(r.B30));
            Add(ref acc.T4C0, ref acc.T4C1, ref acc.T4C2, ref acc.T4C3, Hi(a.A10), Hi(a.A11), Hi(l.B00), Hi(r.B00));
            Add(ref acc.T5C0, ref acc.T5C1, ref acc.T5C2, ref acc.T5C3, Hi(a.A10), Hi(a.A11), Hi(l.B10), Hi(r.B10));
            Add(ref acc.T6C0, ref acc.T6C1, ref acc.T6C2, ref acc.T6C3, Hi(a.A10), Hi(a.A11), Hi(l.B20), Hi(r.B20));
            Add(ref acc.T7C0, ref acc.T7C1, ref acc.T7C2, ref acc.T7C3, Hi(a.A10), Hi(a.A11), Hi(l.B30), Hi(r.B30));
            Add(ref acc.T0C0, ref acc.T0C1, ref acc.T0C2, ref acc.T0C3, Lo(a.A02), Lo(a.A03), Lo(l.B01), Lo(r.B01));
            Add(ref acc.T1C0, ref acc.T1C1, ref acc.T1C2, ref acc.T1C3, Lo(a.A02), Lo(a.A03), Lo(l.B11), Lo(r.B11));
            Add(ref acc.T2C0, ref acc.T2C1, ref acc.T2C2, ref acc.T2C3, Lo(a.A02), Lo(a.A03), Lo(l.B21), Lo(r.B21));
            Add(ref acc.T3C0, ref acc.T3C1, ref acc.T3C2, ref acc.T3C3, Lo(a.A02), Lo(a.A03), Lo(l.B31), Lo(r.B31));
            Add(ref acc.T4C0, ref acc.T4C1, ref acc.T4C2, ref acc.T4C3, Lo(a.A12), Lo(a.A13), Lo(l.B01), Lo(r.B01));
            Add(ref acc.T5C0, ref acc.T5C1, ref acc.T5C2, ref acc.T5C3, Lo(a.A12), Lo(a.A13), Lo(l.B11), Lo(r.B11));
            Add(ref acc.T6C0, ref acc.T6C1, ref acc.T6C2, ref acc.T6C3, Lo(a.A12), Lo(a.A13), Lo(l.B21), Lo(r.B21));
            Add(ref acc.T7C0, ref acc.T7C1, ref acc.T7C2, ref acc.T7C3, Lo(a.A12), Lo(a.A13), Lo(l.B31), Lo(r.B31));
            Add(ref acc.T0C0, ref acc.T0C1, ref acc.T0C2, ref acc.T0C3, Hi(a.A02), Hi(a.A03), Hi(l.B01), Hi(r.B01));
            Add(ref acc.T1C0, ref acc.T1C1, ref acc.T1C2, ref acc.T1C3, Hi(a.A02), Hi(a.A03), Hi(l.B11), Hi(r.B11));
            Add(ref acc.T2C0, ref acc.T2C1, ref acc.T2C2, ref acc.T2C3, Hi(a.A02), Hi(a.A03), Hi(l.B21), Hi(r.B21));
            Add(ref acc.T3C0, ref acc.T3C1, ref acc.T3C2, ref acc.T3C3, Hi(a.A02), Hi(a.A03), Hi(l.B31), Hi(r.B31));
            Add(ref acc.T4C0, ref acc.T4C1, ref acc.T4C2, ref acc.T4C3, Hi(a.A12), Hi(a.A13), Hi(l.B01), Hi(r.B01));
            Add(ref acc.T5C0, ref acc.T5C1, ref acc.T5C2, ref acc.T5C3, Hi(a.A12), Hi(a.A13), Hi(l.B11), Hi(r.B11));
            Add(ref acc.T6C0, ref acc.T6C1, ref acc.T6C2, ref acc.T6C3, Hi(a.A12), Hi(a.A13), Hi(l.B21), Hi(r.B21));
            Add(ref acc.T7C0, ref acc.T7C1, ref acc.T7C2, ref acc.T7C3, Hi(a.A12), Hi(a.A13), Hi(l.B31), Hi(r.B31));
        }
    }

    // The tile's outputs (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1) += one k's products.
    private static void Add(ref float c0, ref float c1, ref float c2, ref float c3, float aTop, float aBottom, float bLeft, float bRight)
    {
        c0 += aTop * bLeft; c1 += aTop * bRight; c2 += aBottom * bLeft; c3 += aBottom * bRight;
    }

    private static float T(uint tf32) => Interop.IntAsFloat(tf32 & 0xFFFFE000u);   // what the tensor core reads of a .tf32
    private static float Lo(uint bf16x2) => Interop.IntAsFloat(bf16x2 << 16);
    private static float Hi(uint bf16x2) => Interop.IntAsFloat(bf16x2 & 0xFFFF0000u);

    /// <summary>
    /// Copies the bank into <paramref name="acc"/> after the K loop (on CUDA: 16 64-bit moves out
    /// of the PTX registers; on the CPU accelerator the values are already there). Call it once;
    /// then <see cref="Read"/> the tiles.
    /// </summary>
    public static void Collect(ref MmaTiles8 acc)
    {
        if (!CudaAsm.IsSupported) return;
        ulong v;
        CudaAsm.Emit("mov.b64 %0, {tca0, tca1};", out v); acc.T0C0 = Low(v); acc.T0C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca2, tca3};", out v); acc.T0C2 = Low(v); acc.T0C3 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca4, tca5};", out v); acc.T1C0 = Low(v); acc.T1C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca6, tca7};", out v); acc.T1C2 = Low(v); acc.T1C3 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca8, tca9};", out v); acc.T2C0 = Low(v); acc.T2C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca10, tca11};", out v); acc.T2C2 = Low(v); acc.T2C3 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca12, tca13};", out v); acc.T3C0 = Low(v); acc.T3C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca14, tca15};", out v); acc.T3C2 = Low(v); acc.T3C3 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca16, tca17};", out v); acc.T4C0 = Low(v); acc.T4C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca18, tca19};", out v); acc.T4C2 = Low(v); acc.T4C3 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca20, tca21};", out v); acc.T5C0 = Low(v); acc.T5C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca22, tca23};", out v); acc.T5C2 = Low(v); acc.T5C3 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca24, tca25};", out v); acc.T6C0 = Low(v); acc.T6C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca26, tca27};", out v); acc.T6C2 = Low(v); acc.T6C3 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca28, tca29};", out v); acc.T7C0 = Low(v); acc.T7C1 = High(v);
        CudaAsm.Emit("mov.b64 %0, {tca30, tca31};", out v); acc.T7C2 = Low(v); acc.T7C3 = High(v);
    }

    private static float Low(ulong v) => Interop.IntAsFloat((uint)v);
    private static float High(ulong v) => Interop.IntAsFloat((uint)(v >> 32));

    /// <summary>The 4 accumulators of tile <paramref name="tile"/> (C/D layout of the table in Mma.cs), after <see cref="Collect"/>.</summary>
    public static void Read(int tile, in MmaTiles8 acc, out float c0, out float c1, out float c2, out float c3)
    {
        switch (tile)
        {
            case 0: c0 = acc.T0C0; c1 = acc.T0C1; c2 = acc.T0C2; c3 = acc.T0C3; return;
            case 1: c0 = acc.T1C0; c1 = acc.T1C1; c2 = acc.T1C2; c3 = acc.T1C3; return;
            case 2: c0 = acc.T2C0; c1 = acc.T2C1; c2 = acc.T2C2; c3 = acc.T2C3; return;
            case 3: c0 = acc.T3C0; c1 = acc.T3C1; c2 = acc.T3C2; c3 = acc.T3C3; return;
            case 4: c0 = acc.T4C0; c1 = acc.T4C1; c2 = acc.T4C2; c3 = acc.T4C3; return;
            case 5: c0 = acc.T5C0; c1 = acc.T5C1; c2 = acc.T5C2; c3 = acc.T5C3; return;
            case 6: c0 = acc.T6C0; c1 = acc.T6C1; c2 = acc.T6C2; c3 = acc.T6C3; return;
            case 7: c0 = acc.T7C0; c1 = acc.T7C1; c2 = acc.T7C2; c3 = acc.T7C3; return;
        }
        c0 = c1 = c2 = c3 = 0;
    }
}
