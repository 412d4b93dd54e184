using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

// The backend test matrix. Every class in Tests/Kernels is a set of [Theory]s whose rows are
// (backend, case) for each backend BackendFactory reports available ("cpu" always; "ilgpu-cpu"
// and "cuda" join automatically once built and, for cuda, when a GPU is present). Each row runs
// the backend's kernel and the float64 reference (ReferenceKernels) from the same random data,
// through OpRun: `=` outputs start as NaN, `+=` buffers start random, every buffer is a guarded
// slice at an offset, and inputs must come back unchanged.
//
// This file: memory ops and data movement.

public sealed record MemoryCase(int Length)
{
    public static IEnumerable<MemoryCase> For(bool slow) =>
        (slow ? new[] { 1, 7, 33, 5001 } : new[] { 1, 7, 8, 9, 16, 17, 65, 129, 40_009 }).Select(n => new MemoryCase(n));
}

/// <summary>A named CopyStrided layout with the lengths of its source and destination buffers.</summary>
public sealed record CopyCase(string Name, StridedCopy Layout, int SrcLength, int DstLength, bool Accumulate)
{
    public override string ToString() => $"{Name} {Layout.N0}x{Layout.N1}x{Layout.N2}x{Layout.Inner}{(Accumulate ? " +=" : "")}";

    public static IEnumerable<CopyCase> For(bool slow)
    {
        // (batch, tokens, heads, head dim)
        // (2, 65, 2, 32): the model's head split at N = 65, d = 32, 8320 elements: on the simulator
        // the grid-stride loop wraps.
        var shapes = slow ? new[] { (1, 1, 1, 1), (2, 5, 2, 3), (2, 65, 2, 32) } : new[] { (1, 1, 1, 1), (2, 5, 2, 3), (3, 65, 3, 7), (2, 17, 4, 33), (64, 65, 4, 16) };
        foreach (var (b, n, h, d) in shapes)
            foreach (bool acc in new[] { false, true })
            {
                int size = b * n * h * d;
                // x: [B, N, H, D] -> y: [B, H, N, D] (head split) and its inverse (head merge).
                yield return new("split", new StridedCopy(b, h, n, d, 0, n * h * d, d, h * d, 0, h * n * d, n * d, d), size, size, acc);
                yield return new("merge", new StridedCopy(b, h, n, d, 0, h * n * d, n * d, d, 0, n * h * d, d, h * d), size, size, acc);
                // x: [B, N, C] written at token 1 of y: [B, N + 1, C] (concat after a class token).
                int c = h * d;
                yield return new("concat", new StridedCopy(b, n, 1, c, 0, n * c, c, 0, c, (n + 1) * c, c, 0), b * n * c, b * (n + 1) * c, acc);
                // one token [C] broadcast to token 0 of each of B rows [B, N + 1, C] (source stride 0).
                yield return new("broadcast", new StridedCopy(b, 1, 1, c, 0, 0, 0, 0, 0, (n + 1) * c, 0, 0), c, b * (n + 1) * c, acc);
                // token 0 of each row selected out of [B, N, C] with offsets on both sides.
                yield return new("select", new StridedCopy(b, 1, 1, c, 2, n * c + 1, 0, 0, 1, c + 3, 0, 0), b * (n * c + 1) + 2, b * (c + 3) + 1, acc);
            }
    }
}

[Collection(BackendCollection.Name)]
public class BackendMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, MemoryCase> MemoryRows => BackendMatrix.Rows(MemoryCase.For);
    public static TheoryData<string, CopyCase> CopyRows => BackendMatrix.Rows(CopyCase.For);

    [Theory, MemberData(nameof(MemoryRows))]
    public void Allocate_is_zero_filled_and_upload_download_round_trip(string backend, MemoryCase c)
    {
        var k = fixture.Get(backend);
        using var buf = k.Allocate(c.Length);
        Assert.Equal(c.Length, buf.Length);
        var got = new float[c.Length];
        k.Download(buf, got);
        Assert.All(got, v => Assert.Equal(0f, v));
        var data = TestRandom.For($"roundtrip {c}").Floats(c.Length, -1e6, 1e6);
        data[0] = float.Epsilon; // a denormal must survive a pure copy bit for bit
        k.Upload(data, buf);
        k.Download(buf, got);
        Assert.Equal(data, got);
    }

    [Theory, MemberData(nameof(MemoryRows))]
    public void Slice_views_share_memory_with_their_parent(string backend, MemoryCase c)
    {
        var k = fixture.Get(backend);
        int n = c.Length;
        using var parent = k.Allocate(n + 10);
        var data = TestRandom.For($"slice {c}").Floats(n);
        using (var view = k.Slice(parent, 4, n)) k.Upload(data, view);
        var all = new float[n + 10];
        k.Download(parent, all);
        for (int i = 0; i < n + 10; i++) Assert.Equal(i >= 4 && i < 4 + n ? data[i - 4] : 0f, all[i]);
        using var inner = k.Slice(k.Slice(parent, 2, n + 6), 2, n); // a slice of a slice
        var back = new float[n];
        k.Download(inner, back);
        Assert.Equal(data, back);
    }

    [Theory, MemberData(nameof(MemoryRows))]
    public void Fill_writes_exactly_n_elements(string backend, MemoryCase c)
    {
        using var run = new OpRun(fixture.Get(backend));
        var y = run.Poisoned("y", c.Length + 3); // the 3 elements past n must stay NaN
        fixture.Get(backend).Fill(y, -0.3125f, c.Length);
        R.Fill(y.Ref, -0.3125f, c.Length);
        run.CheckExact(y);
        run.CheckRest();
    }

    // Without accumulate a copy moves bits: exact. With accumulate it is one float addition per
    // element: |error| ≤ U |y0 + x|.
    [Theory, MemberData(nameof(CopyRows))]
    public void CopyStrided_matches_reference(string backend, CopyCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"copy {c}");
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(c.SrcLength));
        var y = c.Accumulate ? run.With("y", rng.Floats(c.DstLength)) : run.Poisoned("y", c.DstLength);
        k.CopyStrided(x, y, c.Layout, c.Accumulate);
        R.CopyStrided(x.Ref, y.Ref, c.Layout, c.Accumulate);
        run.Check(y, i => U * Math.Abs(y.Ref[i]));
        run.CheckRest();
    }
}
