using ILGPU;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ViTScratch.Kernels.Gpu;
using ViTScratch.Kernels.Ptx;
using ViTScratch.Tests.TestSupport;
using Xunit;

namespace ViTScratch.Tests.Gpu;

/// <summary>
/// The warp-level mma helpers of Kernels/Gpu/Mma.cs on their own:
/// - the roundings against independent definitions (exact rational rounding of the float value);
/// - one warp loads a whole A, B, C into fragments by the PTX ISA's layout (written out here again
///   from the ISA's formulas, not taken from Mma.cs), runs one mma on the simulator, and the 16 x 8
///   result must equal, bit for bit, the direct per-element formula
///   D[r][n] = C[r][n] + sum over k ascending of round(A[r][k]) round(B[k][n]) in float32;
/// - the same probe compiled to PTX for sm_80/sm_90: one mma.sync, ptxas reports no spill, and
///   cuobjdump shows the HMMA and no shuffle (the simulator path is compiled out).
/// </summary>
public sealed class MmaFragmentTests
{
    // ---- roundings -----------------------------------------------------------------------------------

    [Fact]
    public void RoundTf32_is_nearest_ties_away_with_10_mantissa_bits()
    {
        var rng = TestRandom.For("tf32-round");
        foreach (float x in Specials().Concat(RandomFloats(rng, 20000)))
            Assert.Equal(LowPrecision.RoundTo(x, 10, tiesToEven: false), Mma.RoundTf32(x));
        Assert.True(float.IsNaN(Mma.RoundTf32(float.NaN)));
        Assert.Equal(float.PositiveInfinity, Mma.RoundTf32(float.PositiveInfinity));
        Assert.Equal(float.PositiveInfinity, Mma.RoundTf32(float.MaxValue));   // rounds past the largest tf32
    }

    [Fact]
    public void RoundBf16_is_nearest_ties_even_with_7_mantissa_bits()
    {
        var rng = TestRandom.For("bf16-round");
        foreach (float x in Specials().Concat(RandomFloats(rng, 20000)))
            Assert.Equal(LowPrecision.RoundTo(x, 7, tiesToEven: true), Mma.RoundBf16(x));
        Assert.True(float.IsNaN(Mma.RoundBf16(float.NaN)));
        Assert.Equal(float.NegativeInfinity, Mma.RoundBf16(float.NegativeInfinity));
        uint packed = Mma.PackBf16(1.5f, -2.25f);
        Assert.Equal(1.5f, Mma.Bf16ToFloat(packed & 0xFFFF));
        Assert.Equal(-2.25f, Mma.Bf16ToFloat(packed >> 16));
    }

    private static IEnumerable<float> Specials() =>
    [
        0f, -0f, 1f, -1f, 1.00048828125f /* 1 + 2^-11: a tf32 tie */, 1.00146484375f /* 1 + 3 * 2^-11 */,
        1.00390625f /* 1 + 2^-8: a bf16 tie */, 1.01171875f /* 1 + 3 * 2^-8 */, 1.99999988f, float.Epsilon,
        1.17549435e-38f /* smallest normal */, 3.0e-39f /* subnormal */, 65504f, 1e30f, -7.3e-12f,
    ];

    private static IEnumerable<float> RandomFloats(TestRandom rng, int n)
    {
        for (int i = 0; i < n; i++)
        {
            uint bits = rng.NextUInt();
            float x = BitConverter.UInt32BitsToSingle(bits);
            if (float.IsFinite(x) && Math.Abs(x) < 1e38f) yield return x;
            // Ties, which random bits almost never hit: the kept bits then exactly half an ulp.
            uint tieTf32 = (bits & 0xFFFFE000u) | 0x1000u, tieBf16 = (bits & 0xFFFF0000u) | 0x8000u;
            foreach (uint t in new[] { tieTf32, tieBf16 })
                if (float.IsFinite(BitConverter.UInt32BitsToSingle(t)) && Math.Abs(BitConverter.UInt32BitsToSingle(t)) < 1e38f)
                    yield return BitConverter.UInt32BitsToSingle(t);
        }
    }

    // ---- one mma on the simulator ------------------------------------------------------------------

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Simulated_mma_equals_the_per_element_formula(bool bf16)
    {
        int kDim = bf16 ? 16 : 8;
        var rng = TestRandom.For($"mma-probe-{bf16}");
        float[] a = rng.Floats(16 * kDim, -2, 2), b = rng.Floats(kDim * 8, -2, 2), c = rng.Floats(16 * 8, -4, 4);
        float[] d = RunProbe(a, b, c, bf16);
        Func<float, float> round = bf16 ? Mma.RoundBf16 : Mma.RoundTf32;
        for (int r = 0; r < 16; r++)
            for (int n = 0; n < 8; n++)
            {
                float expected = c[r * 8 + n];
                for (int k = 0; k < kDim; k++) expected += round(a[r * kDim + k]) * round(b[k * 8 + n]);
                Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(d[r * 8 + n]),
                    $"{(bf16 ? "bf16" : "tf32")} D[{r}][{n}] = {d[r * 8 + n]:R}, the formula gives {expected:R}");
            }
    }

    private static float[] RunProbe(float[] a, float[] b, float[] c, bool bf16)
    {
        var device = new CPUDevice(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 1, numMultiprocessors: 1);
        using var context = Context.Create(builder => GpuKernels.Configure(builder.CPU(device)));
        using var accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
        using var da = accelerator.Allocate1D(a);
        using var db = accelerator.Allocate1D(b);
        using var dc = accelerator.Allocate1D(c);
        using var dd = accelerator.Allocate1D<float>(16 * 8);
        var kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            bf16 ? Bf16Probe : Tf32Probe);
        kernel(new KernelConfig(1, 32), da.View, db.View, dc.View, dd.View);
        accelerator.Synchronize();
        return dd.GetAsArray1D();
    }

    // A [16, 8], B [8, 8], C and D [16, 8], all row-major; one warp. Register i of each operand
    // is loaded from the (row, col) the PTX ISA assigns it (g = lane / 4, t = lane % 4).
    internal static void Tf32Probe(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> d)
    {
        int lane = Grid.GlobalIndex.X, g = lane / 4, t = lane % 4;
        uint a0 = Mma.Tf32Bits(a[g * 8 + t]), a1 = Mma.Tf32Bits(a[(g + 8) * 8 + t]);
        uint a2 = Mma.Tf32Bits(a[g * 8 + t + 4]), a3 = Mma.Tf32Bits(a[(g + 8) * 8 + t + 4]);
        uint b0 = Mma.Tf32Bits(b[t * 8 + g]), b1 = Mma.Tf32Bits(b[(t + 4) * 8 + g]);
        float c0 = c[g * 8 + 2 * t], c1 = c[g * 8 + 2 * t + 1], c2 = c[(g + 8) * 8 + 2 * t], c3 = c[(g + 8) * 8 + 2 * t + 1];
        Mma.Tf32(ref c0, ref c1, ref c2, ref c3, a0, a1, a2, a3, b0, b1);
        d[g * 8 + 2 * t] = c0; d[g * 8 + 2 * t + 1] = c1; d[(g + 8) * 8 + 2 * t] = c2; d[(g + 8) * 8 + 2 * t + 1] = c3;
    }

    // A [16, 16], B [16, 8]: a0..a7 / b0..b3 of the ISA are the low, high halves of registers 0..3 / 0..1.
    internal static void Bf16Probe(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> d)
    {
        int lane = Grid.GlobalIndex.X, g = lane / 4, t = lane % 4;
        int k0 = 2 * t;
        uint a0 = Mma.PackBf16(a[g * 16 + k0], a[g * 16 + k0 + 1]);
        uint a1 = Mma.PackBf16(a[(g + 8) * 16 + k0], a[(g + 8) * 16 + k0 + 1]);
        uint a2 = Mma.PackBf16(a[g * 16 + k0 + 8], a[g * 16 + k0 + 9]);
        uint a3 = Mma.PackBf16(a[(g + 8) * 16 + k0 + 8], a[(g + 8) * 16 + k0 + 9]);
        uint b0 = Mma.PackBf16(b[k0 * 8 + g], b[(k0 + 1) * 8 + g]);
        uint b1 = Mma.PackBf16(b[(k0 + 8) * 8 + g], b[(k0 + 9) * 8 + g]);
        float c0 = c[g * 8 + 2 * t], c1 = c[g * 8 + 2 * t + 1], c2 = c[(g + 8) * 8 + 2 * t], c3 = c[(g + 8) * 8 + 2 * t + 1];
        Mma.Bf16(ref c0, ref c1, ref c2, ref c3, a0, a1, a2, a3, b0, b1);
        d[g * 8 + 2 * t] = c0; d[g * 8 + 2 * t + 1] = c1; d[(g + 8) * 8 + 2 * t] = c2; d[(g + 8) * 8 + 2 * t + 1] = c3;
    }

    // ---- the probe as PTX and SASS ------------------------------------------------------------------

    [PtxasTheory]
    [InlineData("sm_80", false)]
    [InlineData("sm_90", false)]
    [InlineData("sm_80", true)]
    [InlineData("sm_90", true)]
    public void Probe_compiles_to_one_hmma_without_spills(string arch, bool bf16)
    {
        Assert.True(Ptxas.Path is not null, Ptxas.InstallHint);
        var architecture = PtxEmitter.ParseArch(arch);
        using var context = Context.Create(builder => GpuKernels.Configure(builder));
        var backend = new PTXBackend(context, new CudaCapabilityContext(architecture), architecture, CudaInstructionSet.ISA_78, null);
        string ptx = PtxEmitter.Compile(backend, typeof(MmaFragmentTests).GetMethod(bf16 ? nameof(Bf16Probe) : nameof(Tf32Probe),
            System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)!);
        string mma = bf16 ? "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" : "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32";
        Assert.Equal(1, CountOf(ptx, mma));
        // The simulator path stays in the PTX behind a constant branch (ILGPU does not fold
        // CudaAsm.IsSupported); ptxas removes it: the SASS check below has no SHFL.

        var dir = Directory.CreateTempSubdirectory("vitscratch-mma-");
        try
        {
            string file = Path.Combine(dir.FullName, "probe.ptx"), cubin = Path.Combine(dir.FullName, "probe.cubin");
            File.WriteAllText(file, ptx);
            var r = Ptxas.Assemble(file, arch);
            Assert.True(r.ExitCode == 0, r.Output);
            // No spills. The by-ref helpers do leave a small stack frame (40 B TF32, 64 B BF16 here):
            // EmitRef passes its operands through local variables, which ptxas keeps in local memory
            // as long as the kernel also uses generic (non-.global) pointers, as ILGPU's O1 PTX does.
            // The matmul kernels therefore use MmaRegisters (no stack in the K loop).
            Assert.True(r.SpillStores == 0 && r.SpillLoads == 0, r.Output);
            string sass = Sass.Disassemble(file, cubin, arch);
            Assert.Contains("HMMA", sass);
            Assert.DoesNotContain("SHFL", sass);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
