using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// LayerNorm backward reduces dgamma and dbeta in two stages: one partial per worker, each a
/// private slice of 4 x cols floats (dgamma and dbeta sums, then the xhat and g rows of the row in
/// hand), added up at the end. These tests check that each partial really owns its slice:
/// <list type="bullet">
/// <item>rows of 2 and 3 columns, where a slice offset computed with the wrong arithmetic (say
/// w·4/cols) lands inside the previous partial's slice and mixes its sums even when the partials
/// run one after another;</item>
/// <item>a backward big enough for the worker pool, repeated, where two partials that share one
/// slice (w/4, or w·4/cols with wide rows) race: each overwrites the other's xhat and g rows
/// between the two sweeps of a row, so dx comes out wrong wherever they overlap.</item>
/// </list>
/// Every row's dx is computed by the same code whatever the split, so dx must equal, bit for bit,
/// the backward run one row at a time (one partial, inline). dgamma and dbeta are sums in an order
/// that depends on the split; they are held to LayerNormMatrixTests' float64 bounds.
/// In the run-alone collection, so that no other test holds the pool and the big case runs on it.
/// </summary>
[Collection(AllocationCollection.Name)]
public class LayerNormPartialsTests
{
    [Theory]
    [InlineData(6, 2)]
    [InlineData(9, 3)]
    [InlineData(2, 2)]
    public void NarrowRowsKeepTheirOwnPartials(int rows, int cols) => Check(rows, cols, repeats: 1);

    [Fact]
    public void PartialsOnThePoolDoNotShareSlices()
    {
        long jobsBefore = WorkerPool.Shared.JobsRun;
        // 4096 rows of 256: each worker's half takes a few milliseconds, long enough for the two
        // to overlap even on a loaded host; repeated because overlap is up to the scheduler.
        Check(4096, 256, repeats: 8);
        if (Par.Workers > 1) // on one core there is a single partial and nothing to share
            Assert.True(WorkerPool.Shared.JobsRun > jobsBefore, "the backward ran inline, not on the pool");
    }

    private static void Check(int rows, int cols, int repeats)
    {
        var rng = TestRandom.For($"layernorm partials {rows}x{cols}");
        int n = rows * cols;
        float[] xs = rng.Floats(n, -1.5, 1.5), gs = rng.Floats(cols, 0.5, 1.5), dys = rng.Floats(n);
        float[] dx0 = rng.Floats(n), dgamma0 = rng.Floats(cols), dbeta0 = rng.Floats(cols);
        var meanD = new double[rows]; var rstdD = new double[rows];
        R.LayerNormForward(xs.ToDouble(), gs.ToDouble(), new double[cols], new double[n], meanD, rstdD, rows, cols, 1e-5f);
        float[] means = meanD.ToFloat(), rstds = rstdD.ToFloat();

        var k = new CpuKernels();
        var (x, gamma, mean, rstd, dy) = (k.Upload(xs), k.Upload(gs), k.Upload(means), k.Upload(rstds), k.Upload(dys));

        // dx one row at a time: a single partial, run inline.
        var dxRows = k.Upload(dx0);
        var scratchG = k.Allocate(cols); var scratchB = k.Allocate(cols);
        for (int r = 0; r < rows; r++)
            k.LayerNormBackward(k.Slice(x, r * cols, cols), gamma, k.Slice(mean, r, 1), k.Slice(rstd, r, 1),
                k.Slice(dy, r * cols, cols), k.Slice(dxRows, r * cols, cols), scratchG, scratchB, 1, cols);
        float[] expectedDx = k.Download(dxRows);

        // dgamma, dbeta in float64, with LayerNormMatrixTests' bounds.
        double[] refDx = dx0.ToDouble(), refDg = dgamma0.ToDouble(), refDb = dbeta0.ToDouble();
        R.LayerNormBackward(xs.ToDouble(), gs.ToDouble(), means.ToDouble(), rstds.ToDouble(), dys.ToDouble(),
            refDx, refDg, refDb, rows, cols);
        var sumAbsDyX = new double[cols]; var sumAbsDy = new double[cols];
        for (int i = 0; i < n; i++)
        {
            int r = i / cols, c = i % cols;
            double xhat = ((double)xs[i] - means[r]) * rstds[r];
            sumAbsDyX[c] += Math.Abs(dys[i] * xhat);
            sumAbsDy[c] += Math.Abs(dys[i]);
        }

        for (int rep = 0; rep < repeats; rep++)
        {
            var (dx, dgamma, dbeta) = (k.Upload(dx0), k.Upload(dgamma0), k.Upload(dbeta0));
            k.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols);
            float[] gotDx = k.Download(dx);
            int wrong = 0, first = -1;
            for (int i = 0; i < n; i++)
                if (BitConverter.SingleToInt32Bits(gotDx[i]) != BitConverter.SingleToInt32Bits(expectedDx[i]) && wrong++ == 0) first = i;
            Assert.True(wrong == 0, $"repeat {rep}: {wrong} of {n} dx differ from the row-at-a-time backward, " +
                $"first at row {first / Math.Max(1, cols)}: {(first < 0 ? 0 : gotDx[first])} vs {(first < 0 ? 0 : expectedDx[first])}");
            Tol.Check($"repeat {rep}: dgamma", refDg, k.Download(dgamma), j => (rows + 8) * U * sumAbsDyX[j] + 2 * U * Math.Abs(dgamma0[j]));
            Tol.Check($"repeat {rep}: dbeta", refDb, k.Download(dbeta), j => (rows + 4) * U * sumAbsDy[j] + 2 * U * Math.Abs(dbeta0[j]));
        }
    }
}
