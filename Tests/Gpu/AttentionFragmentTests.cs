using ILGPU;
using ILGPU.Runtime;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Tests.TestSupport;
using Xunit;
using Frag = ViTScratch.Kernels.Gpu.AttentionFragments.Frag;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The emulated mma of AttentionFragments.cs (the CPU accelerator's stand-in for the PTX
/// instruction) against a plain matrix product, with the registers filled here from the PTX ISA's
/// fragment tables, written out independently of the kernels' load helpers: lane (g, t) =
/// (lane / 4, lane % 4).
///   TF32 m16n8k8:  a = A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4];  b = B[t][g], B[t+4][g]
///   BF16 m16n8k16: a = A[g][2t|2t+1], A[g+8][2t|2t+1], A[g][2t+8|2t+9], A[g+8][2t+8|2t+9] (low|high
///                  half); b = B[2t|2t+1][g], B[2t+8|2t+9][g]
///   C: C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]
/// If the emulation read a register from the wrong lane or half, the simulator would agree with a
/// kernel built on the same mistake while the GPU would not; this pins the emulation to the tables.
/// The inputs are exact in the format and small integers over 8, so every sum is exact.
/// </summary>
public sealed class AttentionFragmentTests
{
    private static void Tf32Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
    {
        int lane = Warp.LaneIdx, g = lane / 4, t = lane % 4;
        var acc = new Frag { A0 = c[g * 8 + 2 * t], A1 = c[g * 8 + 2 * t + 1], A2 = c[(g + 8) * 8 + 2 * t], A3 = c[(g + 8) * 8 + 2 * t + 1] };
        var xch = SharedMemory.Allocate<uint>(6 * 32);
        acc = AttentionFragments.MmaTf32(acc,
            Bits(a[g * 8 + t]), Bits(a[(g + 8) * 8 + t]), Bits(a[g * 8 + t + 4]), Bits(a[(g + 8) * 8 + t + 4]),
            Bits(b[t * 8 + g]), Bits(b[(t + 4) * 8 + g]), xch);
        Store(c, acc, g, t);
    }

    private static void Bf16Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
    {
        int lane = Warp.LaneIdx, g = lane / 4, t = lane % 4;
        var acc = new Frag { A0 = c[g * 8 + 2 * t], A1 = c[g * 8 + 2 * t + 1], A2 = c[(g + 8) * 8 + 2 * t], A3 = c[(g + 8) * 8 + 2 * t + 1] };
        var xch = SharedMemory.Allocate<uint>(6 * 32);
        acc = AttentionFragments.MmaBf16(acc,
            Pair(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]), Pair(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]),
            Pair(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]), Pair(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9]),
            Pair(b[2 * t * 8 + g], b[(2 * t + 1) * 8 + g]), Pair(b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g]), xch);
        Store(c, acc, g, t);
    }

    private static uint Bits(float x) => Interop.FloatAsInt(x);
    private static uint Pair(float lo, float hi) => (Interop.FloatAsInt(hi) & 0xFFFF0000u) | (Interop.FloatAsInt(lo) >> 16);

    private static void Store(ArrayView<float> c, Frag acc, int g, int t)
    {
        c[g * 8 + 2 * t] = acc.A0; c[g * 8 + 2 * t + 1] = acc.A1;
        c[(g + 8) * 8 + 2 * t] = acc.A2; c[(g + 8) * 8 + 2 * t + 1] = acc.A3;
    }

    [Theory]
    [InlineData(8)]
    [InlineData(16)]
    public void Emulated_mma_follows_the_PTX_fragment_tables(int kDim)
    {
        using var k = new GpuKernels(GpuDeviceKind.CpuSimulator);
        var rng = TestRandom.For($"mma {kDim}");
        // Distinct small values (multiples of 1/8 up to 4): exact in BF16 and TF32, exact sums.
        float[] a = Enumerable.Range(0, 16 * kDim).Select(_ => (float)(rng.Next(-32, 33) / 8.0)).ToArray();
        float[] b = Enumerable.Range(0, kDim * 8).Select(_ => (float)(rng.Next(-32, 33) / 8.0)).ToArray();
        float[] c = Enumerable.Range(0, 16 * 8).Select(_ => (float)rng.Next(-100, 101)).ToArray();
        var expected = new double[16 * 8];
        for (int r = 0; r < 16; r++)
            for (int n = 0; n < 8; n++)
            {
                double s = c[r * 8 + n];
                for (int kk = 0; kk < kDim; kk++) s += (double)a[r * kDim + kk] * b[kk * 8 + n];
                expected[r * 8 + n] = s;
            }

        var acc = k.Accelerator;
        using var da = acc.Allocate1D(a); using var db = acc.Allocate1D(b); using var dc = acc.Allocate1D(c);
        var kernel = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>>(kDim == 8 ? Tf32Kernel : Bf16Kernel);
        kernel(new KernelConfig(1, 32), da.View, db.View, dc.View);
        acc.Synchronize();
        Tol.Exact($"m16n8k{kDim}", expected, dc.GetAsArray1D());
    }
}
