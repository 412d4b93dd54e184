using ViTScratch.Training.Commands;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;

namespace ViTScratch.Benchmarks;

/// <summary>
/// What limits the AVX2 micro-kernel on one core, with every operand in L1: each probe does the
/// same 12 FMAs per k step as <see cref="MicroKernel256"/> (6 x 16) and differs only in how many
/// loads feed them, timed against a loop of 12 independent FMA chains (no loads) in the same
/// round. The probes' own results are meaningless (they reuse values); only their speed counts.
///   bLoads:     2 B loads per step, A held in registers
///   broadcasts: 6 A broadcasts per step, B held in registers
///   6x16:       the real kernel (MicroKernel256.FullUnpackedA): 2 loads + 6 broadcasts
///   4x24:       a 4 x 24 tile (12 accumulators too): 3 loads + 4 broadcasts (a probe only: inside
///               the whole matmul it gained 2-4% on vit-tiny and lost on vit-micro, so it was not kept)
/// On the Zen 3 host (docs/log/2026-performance-log.md, "The FMA ceiling, corrected") the probes either all run
/// at the FMA loop's rate or, more often, the 6 x 16 kernel drops to 0.7-0.85 of it while the
/// B-loads-only probe does not: then the loads, broadcasts included, are what limit it.
/// Run: dotnet run -c Release --project Benchmarks -- --microkernel-probes   (one thread)
/// </summary>
public static unsafe class MicroKernelProbes
{
    public const string Flag = "--microkernel-probes";

    private const int Kc = 192, Calls = 20_000;
    private const double FlopsPerStep = 12 * 16; // 12 FMAs of 8 lanes, 2 flops each

    public static void Run()
    {
        // A as six rows of Kc floats (read in place), one packed 24-wide B panel, one C tile; ~40 KB in all.
        float* a = Alloc(6 * Kc), b = Alloc(Kc * 24), c = Alloc(6 * 24);
        double flops = Calls * (double)Kc * FlopsPerStep;
        long fmaSteps = Calls * (long)Kc;
        var fma = () => { Sink = FmaPeak.Loop256(fmaSteps); };
        Interleaved.Case Probe(string name, Action body) => new(name, flops, fma, body);
        Interleaved.Compare("12 FMAs per k step on one core, operands in L1, against 12 FMA chains without loads",
            "FMA loop", "probe",
        [
            Probe("2 B loads (A in registers)", () => { for (int i = 0; i < Calls; i++) BLoadsOnly(Kc, a, b, c); }),
            Probe("6 broadcasts (B in registers)", () => { for (int i = 0; i < Calls; i++) BroadcastsOnly(Kc, a, Kc, b, c); }),
            Probe("6 x 16: 2 loads + 6 broadcasts", () => { for (int i = 0; i < Calls; i++) MicroKernel256.FullUnpackedA(Kc, a, Kc, b, c, 24, 1f, false); }),
            Probe("4 x 24: 3 loads + 4 broadcasts", () => { for (int i = 0; i < Calls; i++) Tile4x24(Kc, a, Kc, b, c); }),
        ], rounds: 15, warmup: 3);
    }

    public static float Sink;

    private static float* Alloc(int n)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)n * sizeof(float), 64);
        var rnd = new Random(n);
        for (int i = 0; i < n; i++) p[i] = (float)(rnd.NextDouble() - 0.5) * 0.01f;
        return p;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void BLoadsOnly(int kc, float* a, float* b, float* c)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        var x0 = Vector256.Create(a[0]);
        var x1 = Vector256.Create(a[1]);
        for (int p = 0; p < kc; p++, b += 16)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            c00 = Vector256.FusedMultiplyAdd(x0, b0, c00); c01 = Vector256.FusedMultiplyAdd(x0, b1, c01);
            c10 = Vector256.FusedMultiplyAdd(x1, b0, c10); c11 = Vector256.FusedMultiplyAdd(x1, b1, c11);
            c20 = Vector256.FusedMultiplyAdd(x0, b0, c20); c21 = Vector256.FusedMultiplyAdd(x0, b1, c21);
            c30 = Vector256.FusedMultiplyAdd(x1, b0, c30); c31 = Vector256.FusedMultiplyAdd(x1, b1, c31);
            c40 = Vector256.FusedMultiplyAdd(x0, b0, c40); c41 = Vector256.FusedMultiplyAdd(x0, b1, c41);
            c50 = Vector256.FusedMultiplyAdd(x1, b0, c50); c51 = Vector256.FusedMultiplyAdd(x1, b1, c51);
        }
        Vector256.Store(c00 + c01 + c10 + c11 + c20 + c21 + c30 + c31 + c40 + c41 + c50 + c51, c);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void BroadcastsOnly(int kc, float* a, long lda, float* b, float* c)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        var b0 = Vector256.Load(b);
        var b1 = Vector256.Load(b + 8);
        float* a0 = a, a3 = a + 3 * lda;
        long l2 = 2 * lda;
        for (int p = 0; p < kc; p++, a0++, a3++)
        {
            var x = Vector256.Create(a0[0]);
            c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a0[lda]);
            c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a0[l2]);
            c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a3[0]);
            c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            x = Vector256.Create(a3[lda]);
            c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
            x = Vector256.Create(a3[l2]);
            c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
        }
        Vector256.Store(c00 + c01 + c10 + c11 + c20 + c21 + c30 + c31 + c40 + c41 + c50 + c51, c);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x24(int kc, float* a, long lda, float* b, float* c)
    {
        Vector256<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default;
        Vector256<float> c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default;
        float* a0 = a, a2 = a + 2 * lda;
        for (int p = 0; p < kc; p++, a0++, a2++, b += 24)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var b2 = Vector256.Load(b + 16);
            var x = Vector256.Create(a0[0]);
            c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01); c02 = Vector256.FusedMultiplyAdd(x, b2, c02);
            x = Vector256.Create(a0[lda]);
            c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11); c12 = Vector256.FusedMultiplyAdd(x, b2, c12);
            x = Vector256.Create(a2[0]);
            c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21); c22 = Vector256.FusedMultiplyAdd(x, b2, c22);
            x = Vector256.Create(a2[lda]);
            c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31); c32 = Vector256.FusedMultiplyAdd(x, b2, c32);
        }
        Vector256.Store(c00 + c01 + c02 + c10 + c11 + c12 + c20 + c21 + c22 + c30 + c31 + c32, c);
    }
}
