using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;

namespace ViTScratch.Tests.Kernels;

/// <summary>An image batch [B, C, H, W] cut into p x p patches; W differs from H in some cases.</summary>
public sealed record PatchCase(int B, int C, int H, int W, int P, bool Accumulate)
{
    public int Length => B * C * H * W;

    public static IEnumerable<PatchCase> For(bool slow)
    {
        var shapes = slow
            ? new[] { (1, 1, 2, 2, 1), (2, 3, 4, 6, 2), (2, 3, 32, 32, 4) }   // the last: CIFAR's 6144 values, past one launch's 4096 threads
            : new[] { (1, 1, 2, 2, 1), (2, 3, 4, 6, 2), (3, 1, 28, 28, 7), (2, 3, 32, 32, 4), (1, 2, 9, 6, 3), (2, 1, 28, 28, 4) };
        foreach (var (b, c, h, w, p) in shapes)
            foreach (bool acc in new[] { false, true })
                yield return new(b, c, h, w, p, acc);
    }
}

/// <summary>
/// Patchify forward and backward on every backend against a plain loop over vit-pytorch's
/// Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)') written out here (not through
/// KernelMath.PatchIndex, which the kernels share). Pure data movement: results must be exact.
/// </summary>
[Collection(BackendCollection.Name)]
public class PatchifyMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, PatchCase> Rows => BackendMatrix.Rows(PatchCase.For);

    // The forward pass always overwrites, so only the `=` cases.
    public static TheoryData<string, PatchCase> ForwardRows => BackendMatrix.Rows(slow => PatchCase.For(slow).Where(c => !c.Accumulate));

    [Theory, MemberData(nameof(ForwardRows))]
    public void ForwardMatchesTheRearrange(string backend, PatchCase c)
    {
        var k = fixture.Get(backend);
        using var run = new OpRun(k);
        var images = run.With("images", TestRandom.For($"patchify {c}").Floats(c.Length));
        var patches = run.Poisoned("patches", c.Length);
        k.PatchifyForward(images, patches, c.B, c.C, c.H, c.W, c.P);
        Rearrange(c, (img, pat) => patches.Ref[pat] = images.Ref[img]);
        run.CheckExact(patches);
        run.CheckRest();
    }

    [Theory, MemberData(nameof(Rows))]
    public void BackwardIsTheInverse(string backend, PatchCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"unpatchify {c}");
        using var run = new OpRun(k);
        var dPatches = run.With("dPatches", rng.Floats(c.Length));
        var dImages = c.Accumulate ? run.With("dImages", rng.Floats(c.Length)) : run.Poisoned("dImages", c.Length);
        k.PatchifyBackward(dPatches, dImages, c.B, c.C, c.H, c.W, c.P, c.Accumulate);
        Rearrange(c, (img, pat) => dImages.Ref[img] = (c.Accumulate ? dImages.Ref[img] : 0) + dPatches.Ref[pat]);
        run.Check(dImages, i => c.Accumulate ? Tol.U * Math.Abs(dImages.Ref[i]) : 0); // one rounding for +=
        run.CheckRest();
    }

    // Calls visit(image index, patch index) for every pixel.
    private static void Rearrange(PatchCase c, Action<int, int> visit)
    {
        int gh = c.H / c.P, gw = c.W / c.P, pd = c.P * c.P * c.C;
        for (int b = 0; b < c.B; b++)
            for (int gy = 0; gy < gh; gy++)
                for (int gx = 0; gx < gw; gx++)
                    for (int p1 = 0; p1 < c.P; p1++)
                        for (int p2 = 0; p2 < c.P; p2++)
                            for (int ch = 0; ch < c.C; ch++)
                            {
                                int img = ((b * c.C + ch) * c.H + gy * c.P + p1) * c.W + gx * c.P + p2;
                                int pat = (b * gh * gw + gy * gw + gx) * pd + (p1 * c.P + p2) * c.C + ch;
                                visit(img, pat);
                            }
    }
}
