using ViTScratch.Kernels.Cpu;
using ViTScratch.Kernels.Cpu.MatMul;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The helpers around the fused CPU attention's products (AttentionRows): the key/value transpose
/// both ways (AVX 8 x 8 blocks and the plain loop the blocks fall back to), on ragged sizes with
/// rows further apart than they are long, and the padded softmax row, whose padding columns must
/// come out as exact zeros however large the row's real scores are.
/// The transpose writes through a raw pointer, so its output sits between guard cells that must
/// come back untouched: a loop bound one too far (a block or row past d, a column past np) writes
/// there, where in the kernel it would land in the next scratch buffer.
/// </summary>
public unsafe class AttentionRowsTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 13)]
    [InlineData(8, 8)]
    [InlineData(9, 17)]
    [InlineData(17, 32)]
    [InlineData(65, 64)]
    [InlineData(30, 5)]
    [InlineData(9, 32)]
    [InlineData(9, 36)]
    [InlineData(16, 24)]
    [InlineData(17, 32, "V512")] // np = 32: two blocks past the 16 real rows, one of them all padding
    [InlineData(24, 40, "V512")] // no ragged row, padding only
    [InlineData(3, 7)]           // no whole block at all
    [InlineData(16, 13)]         // np = n, ragged columns: nothing between a row's end and the next row
    [InlineData(32, 20, "V512")] // the same at the 512 padding
    public void TransposeMatchesTheDefinitionBothWays(int n, int d, string pathName = "V256")
    {
        var rnd = new Random(n * 100 + d);
        long ldx = d + 5;
        int np = AttentionRows.PaddedKeys(n, pathName == "V512" ? SimdPath.Vector512 : SimdPath.Vector256);
        // Spare rows after x: a wrong bound reads past it instead of past the array.
        var x = new float[(n + 16) * ldx];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        int guard = 16 * np; // a whole block of 8 rows past d, and more
        foreach (bool blocked in new[] { false, true })
        {
            var t = new float[guard + d * np + guard];
            Array.Fill(t, float.NaN); // every element must be written
            const float Guard = -12345f;
            t.AsSpan(0, guard).Fill(Guard);
            t.AsSpan(guard + d * np).Fill(Guard);
            fixed (float* px = x, pt = t) AttentionRows.Transpose(px, n, d, ldx, pt + guard, np, blocked);
            for (int c = 0; c < d; c++)
                for (int j = 0; j < np; j++)
                    Assert.Equal(j < n ? x[j * ldx + c] : 0f, t[guard + c * np + j]);
            for (int i = 0; i < guard; i++)
            {
                Assert.True(t[i] == Guard, $"blocked={blocked}: wrote {guard - i} floats before the output");
                Assert.True(t[guard + d * np + i] == Guard, $"blocked={blocked}: wrote {i + 1} floats past the output");
            }
        }
    }

    [Theory]
    [InlineData("V256", 1)]
    [InlineData("V256", 17)]
    [InlineData("V256", 65)]
    [InlineData("V256", 8)]
    [InlineData("V512", 1)]
    [InlineData("V512", 16)]
    [InlineData("V512", 17)]
    [InlineData("V512", 31)]
    [InlineData("V512", 65)]
    public void ExpShiftedZeroesThePaddingAndSumsTheRow(string pathName, int n)
    {
        var path = pathName == "V512" ? SimdPath.Vector512 : SimdPath.Vector256;
        int np = AttentionRows.PaddedKeys(n, path);
        var rnd = new Random(n);
        var row = new float[np];
        for (int j = 0; j < np; j++) row[j] = (float)(rnd.NextDouble() * 20 - 10);
        for (int j = n; j < np; j++) row[j] = (float)(rnd.NextDouble() * 20 + 10); // padding holds garbage above every score, which Max must not read
        var scores = row[..n];
        fixed (float* p = row)
        {
            float max = AttentionRows.Max(p, n, np, path);
            Assert.Equal(scores.Max(), max);
            // The forward's cheaper exp (shift = the row max) gives the general one's bits.
            var copy = (float[])row.Clone();
            float sumFromMax;
            fixed (float* c = copy) sumFromMax = AttentionRows.ExpShifted(c, n, np, max, path, shiftIsRowMax: true);
            float sum = AttentionRows.ExpShifted(p, n, np, max, path);
            Assert.Equal(sum, sumFromMax);
            Assert.Equal(row, copy);
            double expected = 0;
            for (int j = 0; j < n; j++)
            {
                double e = Math.Exp(scores[j] - max); // the float difference the kernel takes the exp of
                expected += e;
                Assert.Equal(e, row[j], e * 4e-7); // Simd.Exp is within 1.5e-7 relative
            }
            for (int j = n; j < np; j++) Assert.Equal(0f, row[j]);
            Assert.Equal(expected, sum, expected * (n + 4) * 1.2e-7);
        }
    }

    // The attention kernels address their per-thread scratch (CpuKernels.AttentionRowBuffers)
    // through raw pointers for a whole call, so the array must never move: it is allocated pinned.
    // A compacting collection, with dead objects before and after it, leaves it where it was.
    // (Mutation testing: `pinned: false` survived, since no test made a collection move it; an
    // unpinned array of this size, young and behind garbage, is moved by this collection.)
    [Fact]
    public void TheScratchDoesNotMoveInACompactingCollection()
    {
        nint before = 0, after = 0;
        var thread = new Thread(() => // a fresh thread: its scratch is allocated here
        {
            var garbage = new List<byte[]>();
            for (int i = 0; i < 2000; i++) garbage.Add(new byte[512]);
            before = (nint)CpuKernels.AttentionRowBuffers.Get(65 * 80, 80, 64, out _, out _, out _, out _); // vit-tiny's N = 65, d = 64 on AVX-512
            for (int i = 0; i < 2000; i++) garbage.Add(new byte[512]);
            garbage.Clear();
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            after = (nint)CpuKernels.AttentionRowBuffers.Get(65 * 80, 80, 64, out _, out _, out _, out _);
        });
        thread.Start();
        thread.Join();
        Assert.NotEqual(0, before);
        Assert.Equal(before, after);
    }
}
