using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The CPU strided copy moves runs through raw pointers, so it checks the whole footprint of both
/// sides once (Fits): offset + (N0-1)·S0 + (N1-1)·S1 + (N2-1)·S2 + Inner must not pass the buffer,
/// and no offset or stride may be negative. Each field in turn is pushed one float past its
/// buffer (or to -1): the copy must throw; a layout whose last run ends exactly at the end of
/// both buffers must run and copy every run. A check that drops a term, or compares with &lt;
/// instead of &lt;=, would let the copy read or write past an array (the half-run Elementwise
/// mutation group left exactly these mutants alive; docs/testing.md).
/// </summary>
public class CpuStridedCopyBoundsTests
{
    // 2 x 3 x 2 runs of 4 floats, source and destination laid out with different strides.
    private static readonly StridedCopy Exact = new(N0: 2, N1: 3, N2: 2, Inner: 4,
        SrcOffset: 1, S0: 30, S1: 9, S2: 5, DstOffset: 2, D0: 25, D1: 8, D2: 4);

    private static int Footprint(int offset, int s0, int s1, int s2, in StridedCopy l) =>
        offset + (l.N0 - 1) * s0 + (l.N1 - 1) * s1 + (l.N2 - 1) * s2 + l.Inner;

    private static readonly int SrcLength = Footprint(Exact.SrcOffset, Exact.S0, Exact.S1, Exact.S2, Exact);  // 67
    private static readonly int DstLength = Footprint(Exact.DstOffset, Exact.D0, Exact.D1, Exact.D2, Exact);  // 51

    public static TheoryData<string> OneTooFar => new("SrcOffset", "S0", "S1", "S2", "DstOffset", "D0", "D1", "D2");

    private static StridedCopy Bump(string field, int by) => field switch
    {
        "SrcOffset" => Exact with { SrcOffset = Exact.SrcOffset + by },
        "S0" => Exact with { S0 = Exact.S0 + by },
        "S1" => Exact with { S1 = Exact.S1 + by },
        "S2" => Exact with { S2 = Exact.S2 + by },
        "DstOffset" => Exact with { DstOffset = Exact.DstOffset + by },
        "D0" => Exact with { D0 = Exact.D0 + by },
        "D1" => Exact with { D1 = Exact.D1 + by },
        "D2" => Exact with { D2 = Exact.D2 + by },
        _ => throw new ArgumentException(field),
    };

    private static StridedCopy Negative(string field) => field switch
    {
        "SrcOffset" => Exact with { SrcOffset = -1 },
        "S0" => Exact with { S0 = -1 },
        "S1" => Exact with { S1 = -1 },
        "S2" => Exact with { S2 = -1 },
        "DstOffset" => Exact with { DstOffset = -1 },
        "D0" => Exact with { D0 = -1 },
        "D1" => Exact with { D1 = -1 },
        "D2" => Exact with { D2 = -1 },
        _ => throw new ArgumentException(field),
    };

    [Theory, MemberData(nameof(OneTooFar))]
    public void AFieldOneFloatPastItsBufferIsRefused(string field)
    {
        using var k = new CpuKernels();
        using var x = k.Allocate(SrcLength);
        using var y = k.Allocate(DstLength);
        var layout = Bump(field, 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => k.CopyStrided(x, y, layout, accumulate: false));
        Assert.Contains($"reaches outside its buffers ({SrcLength} and {DstLength} floats)", e.Message);
    }

    [Theory, MemberData(nameof(OneTooFar))]
    public void ANegativeOffsetOrStrideIsRefused(string field)
    {
        using var k = new CpuKernels();
        using var x = k.Allocate(SrcLength + 64);
        using var y = k.Allocate(DstLength + 64);
        var layout = Negative(field);
        Assert.Throws<ArgumentOutOfRangeException>(() => k.CopyStrided(x, y, layout, accumulate: false));
    }

    [Fact]
    public void ALayoutEndingExactlyAtBothEndsCopiesEveryRun()
    {
        using var k = new CpuKernels();
        var src = Enumerable.Range(0, SrcLength).Select(i => (float)(i + 1)).ToArray();
        using var x = k.Allocate(SrcLength);
        using var y = k.Allocate(DstLength);
        k.Upload(src, x);
        k.CopyStrided(x, y, Exact, accumulate: false);
        var got = new float[DstLength];
        k.Download(y, got);
        var l = Exact;
        for (int i0 = 0; i0 < l.N0; i0++)
            for (int i1 = 0; i1 < l.N1; i1++)
                for (int i2 = 0; i2 < l.N2; i2++)
                    for (int j = 0; j < l.Inner; j++)
                        Assert.Equal(src[l.SrcOffset + i0 * l.S0 + i1 * l.S1 + i2 * l.S2 + j],
                                     got[l.DstOffset + i0 * l.D0 + i1 * l.D1 + i2 * l.D2 + j]);
    }

    // A copy big enough to be cut between the workers, with odd N1 and N2, so that a worker's first
    // run starts inside a row (i1, i2 not 0): each worker computes its start offsets from the
    // split run index, and a wrong term there (a sign, a dropped stride) moved the wrong runs while
    // every smaller copy, run on one thread from run 0, stayed right (mutation testing,
    // docs/testing.md). Both `=` and `+=`.
    [Fact]
    public void ACopyCutBetweenWorkersMovesEveryRun()
    {
        var l = new StridedCopy(N0: 3, N1: 7, N2: 1001, Inner: 4,
            SrcOffset: 3, S0: 7 * 1001 * 5 + 11, S1: 1001 * 5 + 2, S2: 5, DstOffset: 1, D0: 7 * 1001 * 4, D1: 1001 * 4, D2: 4);
        int srcLength = Footprint(l.SrcOffset, l.S0, l.S1, l.S2, l), dstLength = Footprint(l.DstOffset, l.D0, l.D1, l.D2, l);
        Assert.True(Par.Workers < 2 || (long)l.N0 * l.N1 * l.N2 * l.Inner > 32_768, "the copy must be big enough to be cut");
        var rnd = new Random(7);
        var src = Enumerable.Range(0, srcLength).Select(_ => (float)rnd.NextDouble()).ToArray();
        var start = Enumerable.Range(0, dstLength).Select(_ => (float)rnd.NextDouble()).ToArray();
        using var k = new CpuKernels();
        using var x = k.Allocate(srcLength);
        using var y = k.Allocate(dstLength);
        k.Upload(src, x);
        foreach (bool accumulate in new[] { false, true })
        {
            k.Upload(start, y);
            k.CopyStrided(x, y, l, accumulate);
            var got = new float[dstLength];
            k.Download(y, got);
            var want = (float[])start.Clone();
            for (int i0 = 0; i0 < l.N0; i0++)
                for (int i1 = 0; i1 < l.N1; i1++)
                    for (int i2 = 0; i2 < l.N2; i2++)
                        for (int j = 0; j < l.Inner; j++)
                        {
                            int d = l.DstOffset + i0 * l.D0 + i1 * l.D1 + i2 * l.D2 + j;
                            float v = src[l.SrcOffset + i0 * l.S0 + i1 * l.S1 + i2 * l.S2 + j];
                            want[d] = accumulate ? want[d] + v : v;
                        }
            for (int e = 0; e < dstLength; e++)
                if (want[e] != got[e]) Assert.Fail($"accumulate={accumulate}: y[{e}] = {got[e]}, want {want[e]}");
        }
    }
}
