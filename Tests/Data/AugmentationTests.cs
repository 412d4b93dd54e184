using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

public class AugmentationTests
{
    private static readonly float[] One = [1f], Zero = [0f];

    [Fact]
    public void CropFlip_OnKnownTinyImage()
    {
        // 1 channel, 3 rows x 4 cols, values 1..12.
        byte[] img = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        var outp = new float[12];
        // Padding 1, window offset (dx=0, dy=2): shifted up by 1 row and right by 1 column (zeros enter at the left / bottom).
        SampleTransforms.CropFlipNormalise(img, outp, 1, 3, 4, 1, 0, 2, false, One, Zero);
        Assert.Equal([0, 5, 6, 7, 0, 9, 10, 11, 0, 0, 0, 0], outp);
        // Same window, then mirrored.
        SampleTransforms.CropFlipNormalise(img, outp, 1, 3, 4, 1, 0, 2, true, One, Zero);
        Assert.Equal([7, 6, 5, 0, 11, 10, 9, 0, 0, 0, 0, 0], outp);
        // Centre window (dx = dy = padding) without flip is the identity.
        SampleTransforms.CropFlipNormalise(img, outp, 1, 3, 4, 1, 1, 1, false, One, Zero);
        Assert.Equal(img.Select(v => (float)v), outp);
    }

    /// <summary>Reference: literally pad with zeros, cut the window, mirror.</summary>
    private static float[] Reference(ReadOnlySpan<byte> img, int c, int h, int w, int pad, int dx, int dy, bool flip)
    {
        int ph = h + 2 * pad, pw = w + 2 * pad;
        var padded = new byte[c * ph * pw];
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    padded[ch * ph * pw + (y + pad) * pw + x + pad] = img[ch * h * w + y * w + x];
        var o = new float[c * h * w];
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    o[ch * h * w + y * w + (flip ? w - 1 - x : x)] = padded[ch * ph * pw + (y + dy) * pw + x + dx];
        return o;
    }

    [Fact]
    public void LoaderCropFlip_EveryOutputIsOneOfTheAllowedTransforms_AndBothFlipsOccur()
    {
        const int c = 3, h = 7, w = 5, pad = 2;
        var data = DataTestUtil.RandomDataset(65, c, h, w, 10, seed: 11);
        using var loader = new DataLoader(data, new DataLoaderOptions
        {
            BatchSize = 9, Seed = 3, Workers = 2, CropPadding = pad, HorizontalFlip = true, Normalise = false,
        });
        int flips = 0, plain = 0;
        var offsets = new HashSet<(int, int)>();
        foreach (var b in loader.GetEpoch(1))
            using (b)
                for (int i = 0; i < b.Count; i++)
                {
                    var got = b.ImagesSpan.Slice(i * data.ImageSize, data.ImageSize).ToArray().Select(v => (byte)MathF.Round(v * 255f)).ToArray();
                    bool matched = false;
                    for (int dy = 0; dy <= 2 * pad && !matched; dy++)
                        for (int dx = 0; dx <= 2 * pad && !matched; dx++)
                            foreach (bool flip in new[] { false, true })
                                if (Reference(data.Image(b.SampleIndices[i]), c, h, w, pad, dx, dy, flip).Select(v => (byte)v).SequenceEqual(got))
                                {
                                    matched = true; offsets.Add((dx, dy));
                                    if (flip) flips++; else plain++;
                                    break;
                                }
                    Assert.True(matched, $"sample {b.SampleIndices[i]} is not a crop/flip of its source");
                }
        Assert.True(flips > 10 && plain > 10, $"flips {flips}, plain {plain}");
        Assert.True(offsets.Count > 10, $"only {offsets.Count} distinct crop offsets out of 25");
    }

    [Fact]
    public void Mixup_MixesReversedPairs_WithReportedLambda()
    {
        var data = DataTestUtil.RandomDataset(129, 3, 5, 5, 10, seed: 12);
        var baseOptions = new DataLoaderOptions { BatchSize = 16, Seed = 5, Workers = 0, CropPadding = 1, HorizontalFlip = true };
        var mixOptions = new DataLoaderOptions { BatchSize = 16, Seed = 5, Workers = 0, CropPadding = 1, HorizontalFlip = true, MixupAlpha = 0.4f };
        using var plainLoader = new DataLoader(data, baseOptions);
        using var mixLoader = new DataLoader(data, mixOptions);
        int size = data.ImageSize;
        foreach (var (p, m) in plainLoader.GetEpoch(0).Zip(mixLoader.GetEpoch(0)))
            using (p) using (m)
            {
                int n = m.Count;
                Assert.InRange(m.Lambda, 0f, 1f);
                for (int i = 0; i < n; i++)
                {
                    Assert.Equal(p.LabelsA[i], m.LabelsA[i]);
                    Assert.Equal(p.LabelsA[n - 1 - i], m.LabelsB[i]);
                    for (int k = 0; k < size; k++)
                    {
                        float expected = m.Lambda * p.Images[i * size + k] + (1 - m.Lambda) * p.Images[(n - 1 - i) * size + k];
                        Assert.Equal(expected, m.Images[i * size + k], 1e-5f); // two float products of values ≤ ~5
                    }
                }
            }
    }

    [Fact]
    public void CutMix_SwapsTheBox_AndLambdaIsTheKeptArea()
    {
        const int c = 2, h = 7, w = 9, n = 5;
        int plane = h * w, size = c * plane;
        var images = new float[n * size];
        for (int i = 0; i < images.Length; i++) images[i] = i; // every value distinct
        var original = (float[])images.Clone();
        var box = BatchMixing.CutMixBox(h, w, 0.6, cx: 1, cy: 5); // clipped at the left edge
        float lambda = BatchMixing.CutMix(images, n, c, h, w, box);
        int inside = 0;
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        bool inBox = x >= box.X0 && x < box.X1 && y >= box.Y0 && y < box.Y1;
                        int own = i * size + ch * plane + y * w + x, partner = (n - 1 - i) * size + ch * plane + y * w + x;
                        Assert.Equal(inBox ? original[partner] : original[own], images[own]);
                        if (inBox && i == 0 && ch == 0) inside++;
                    }
        Assert.True(inside > 0 && inside < plane);
        Assert.Equal(1f - (float)inside / plane, lambda, 1e-6f);
        Assert.Equal(0, box.X0); // clipping happened
    }

    [Fact]
    public void CutMixInLoader_LabelsAndLambdaConsistent()
    {
        var data = DataTestUtil.RandomDataset(65, 3, 8, 8, 10, seed: 13);
        using var loader = new DataLoader(data, new DataLoaderOptions { BatchSize = 8, Seed = 2, Workers = 2, CutMixAlpha = 1f });
        int mixed = 0;
        foreach (var b in loader.GetEpoch(0))
            using (b)
            {
                Assert.InRange(b.Lambda, 0f, 1f);
                if (b.Lambda < 1f) mixed++;
                for (int i = 0; i < b.Count; i++) Assert.Equal(b.LabelsA[b.Count - 1 - i], b.LabelsB[i]);
                // The float copies the trainer uploads for the loss are the same classes, A and B each.
                Assert.Equal(b.LabelsASpan.ToArray().Select(l => (float)l), b.LabelsAAsFloats().ToArray());
                Assert.Equal(b.LabelsBSpan.ToArray().Select(l => (float)l), b.LabelsBAsFloats().ToArray());
            }
        Assert.True(mixed >= loader.BatchesPerEpoch - 2, $"only {mixed} of {loader.BatchesPerEpoch} batches had a non-empty box");
    }

    [Fact]
    public void BetaSampler_MeanAndVariance()
    {
        // Beta(0.4, 0.4): mean 0.5, variance ab/((a+b)^2 (a+b+1)) = 0.13889. 20000 draws: standard error of the
        // mean ≈ 0.0026 and of the variance ≈ 0.001; tolerances are about 4 standard errors.
        var rng = DataRandom.For(1, 2, 3, 4);
        var xs = Enumerable.Range(0, 20000).Select(_ => rng.NextBeta(0.4, 0.4)).ToArray();
        double mean = xs.Average(), variance = xs.Select(x => (x - mean) * (x - mean)).Average();
        Assert.InRange(mean, 0.49, 0.51);
        Assert.InRange(variance, 0.1349, 0.1429);
        Assert.All(xs, x => Assert.InRange(x, 0.0, 1.0));
    }

    // ------------------------------------------------------------------ RandAugment

    private static byte[] RandomImage(int c, int h, int w, int seed)
    {
        var img = new byte[c * h * w];
        new Random(seed).NextBytes(img);
        return img;
    }

    public static IEnumerable<object[]> AllOps() => Enum.GetValues<RandAugmentOp>().Select(o => new object[] { o });

    [Theory]
    [MemberData(nameof(AllOps))]
    public void EveryOp_AtMagnitudeZero_IsIdentity_ExceptMagnitudeFreeOps(RandAugmentOp op)
    {
        foreach (var (c, h, w) in new[] { (3, 7, 9), (1, 5, 5), (3, 32, 32) })
        {
            var img = RandomImage(c, h, w, (int)op * 7 + h);
            var work = (byte[])img.Clone();
            RandAugment.ApplyOp(op, work, new byte[img.Length], c, h, w, 0f, negate: true);
            Assert.Equal(img.Length, work.Length);
            if (op is not (RandAugmentOp.AutoContrast or RandAugmentOp.Equalize))
                Assert.Equal(img, work);
        }
    }

    [Theory]
    [MemberData(nameof(AllOps))]
    public void EveryOp_AtFullMagnitude_ChangesARandomImage_OrIsDefinedAsNoop(RandAugmentOp op)
    {
        var img = RandomImage(3, 32, 32, 100 + (int)op);
        var work = (byte[])img.Clone();
        RandAugment.ApplyOp(op, work, new byte[img.Length], 3, 32, 32, 1f, negate: false);
        // AutoContrast leaves a random image (already spanning 0..255) alone; Identity is identity.
        if (op is RandAugmentOp.Identity or RandAugmentOp.AutoContrast) Assert.Equal(img, work);
        else Assert.NotEqual(img, work);
    }

    [Fact]
    public void PhotometricOps_ExactValues()
    {
        var img = RandomImage(3, 7, 9, 1);
        var s = new byte[img.Length];
        byte[] Run(RandAugmentOp op, float m, bool neg) { var x = (byte[])img.Clone(); RandAugment.ApplyOp(op, x, s, 3, 7, 9, m, neg); return x; }

        Assert.Equal(img.Select(v => (byte)(255 - v)), Run(RandAugmentOp.Solarize, 1f, false));
        Assert.Equal(img.Select(v => v >= 128 ? (byte)(255 - v) : v), Run(RandAugmentOp.Solarize, 0.5f, false));
        Assert.Equal(img.Select(v => (byte)(v & 0xF0)), Run(RandAugmentOp.Posterize, 1f, false));
        // Factors 1 ∓ 0.9 computed in float exactly as the op does, so .5 cases round the same way.
        float down = 1f - 0.9f, up = 1f + 0.9f;
        Assert.Equal(img.Select(v => (byte)MathF.Round(v * down)), Run(RandAugmentOp.Brightness, 1f, true));
        Assert.Equal(img.Select(v => (byte)Math.Min(255f, MathF.Round(v * up))), Run(RandAugmentOp.Brightness, 1f, false));
    }

    [Fact]
    public void AutoContrast_StretchesEachChannelToFullRange()
    {
        var img = RandomImage(3, 5, 7, 2).Select(v => (byte)(60 + v / 4)).ToArray(); // values in 60..123
        RandAugment.ApplyOp(RandAugmentOp.AutoContrast, img, new byte[img.Length], 3, 5, 7, 1f, false);
        for (int c = 0; c < 3; c++)
        {
            var plane = img.AsSpan(c * 35, 35).ToArray();
            Assert.Equal(0, plane.Min());
            Assert.Equal(255, plane.Max());
        }
    }

    [Fact]
    public void Equalize_IsMonotoneAndFlattensALowContrastHistogram()
    {
        var src = RandomImage(1, 32, 32, 3).Select(v => (byte)(100 + v / 8)).ToArray(); // 100..131
        var img = (byte[])src.Clone();
        RandAugment.ApplyOp(RandAugmentOp.Equalize, img, new byte[img.Length], 1, 32, 32, 1f, false);
        for (int i = 0; i < src.Length; i++)
            for (int j = 0; j < src.Length; j += 37)
                if (src[i] < src[j]) Assert.True(img[i] <= img[j]);
        Assert.True(img.Min() < 20 && img.Max() > 230, $"range {img.Min()}..{img.Max()}");
    }

    [Fact]
    public void TranslateX_ShiftsByTheExpectedPixels_AndFillsZero()
    {
        // W = 20, m = 1: 0.45·20 = 9 pixels to the right (negate = false).
        var img = RandomImage(1, 4, 20, 4).Select(v => (byte)(v | 1)).ToArray(); // no zeros in the source
        var work = (byte[])img.Clone();
        RandAugment.ApplyOp(RandAugmentOp.TranslateX, work, new byte[img.Length], 1, 4, 20, 1f, false);
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 20; x++)
                Assert.Equal(x < 9 ? 0 : img[y * 20 + x - 9], work[y * 20 + x]);
    }

    [Fact]
    public void Rotate_KeepsTheCentreAndIsAPermutationInside()
    {
        var img = RandomImage(3, 9, 9, 5);
        var work = (byte[])img.Clone();
        RandAugment.ApplyOp(RandAugmentOp.Rotate, work, new byte[img.Length], 3, 9, 9, 1f, false);
        for (int c = 0; c < 3; c++) Assert.Equal(img[c * 81 + 4 * 9 + 4], work[c * 81 + 4 * 9 + 4]);
        // Every output pixel is either 0 (outside) or a source pixel value of the same channel.
        for (int c = 0; c < 3; c++)
        {
            var values = img.AsSpan(c * 81, 81).ToArray().ToHashSet();
            for (int i = 0; i < 81; i++) Assert.True(work[c * 81 + i] == 0 || values.Contains(work[c * 81 + i]));
        }
    }

    [Fact]
    public void Color_OnGrayscaleIsNoop_AndOnGrayRgbIsNoop()
    {
        var gray = RandomImage(1, 5, 5, 6);
        var work = (byte[])gray.Clone();
        RandAugment.ApplyOp(RandAugmentOp.Color, work, new byte[25], 1, 5, 5, 1f, false);
        Assert.Equal(gray, work);
        var rgb = gray.Concat(gray).Concat(gray).ToArray(); // R = G = B: already gray, luma = the value
        var w3 = (byte[])rgb.Clone();
        RandAugment.ApplyOp(RandAugmentOp.Color, w3, new byte[75], 3, 5, 5, 1f, true);
        Assert.Equal(rgb, w3);
    }

    [Fact]
    public void Sharpness_LeavesTheBorder()
    {
        var img = RandomImage(1, 6, 7, 7);
        var work = (byte[])img.Clone();
        RandAugment.ApplyOp(RandAugmentOp.Sharpness, work, new byte[img.Length], 1, 6, 7, 1f, false);
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 7; x++)
                if (y == 0 || x == 0 || y == 5 || x == 6) Assert.Equal(img[y * 7 + x], work[y * 7 + x]);
        Assert.NotEqual(img, work);
    }

    [Fact]
    public void Apply_IsDeterministicForTheSameStream()
    {
        var img = RandomImage(3, 32, 32, 8);
        byte[] a = (byte[])img.Clone(), b = (byte[])img.Clone(), s = new byte[img.Length];
        var r1 = DataRandom.For(1, 2, 3, 4);
        var r2 = DataRandom.For(1, 2, 3, 4);
        RandAugment.Apply(a, s, 3, 32, 32, 3, 9, ref r1);
        RandAugment.Apply(b, s, 3, 32, 32, 3, 9, ref r2);
        Assert.Equal(a, b);
    }
}
