using ViTScratch.Training.Data;
using Xunit;

namespace ViTScratch.Tests.Data;

/// <summary>
/// RandAugment's ops pixel for pixel against small cases worked out by hand (the arithmetic is in
/// the comments), on RGB images whose channels differ, so a swapped channel, a wrong luma weight,
/// statistics shared across channels, or a rotation by the wrong angle or in the wrong direction
/// fails. Images are CHW; "R/G/B of pixel i" is image[c * plane + i].
/// </summary>
public class AugmentationExactTests
{
    // A 2x2 RGB image: R = [200, 10, 100, 50], G = [100, 20, 0, 250], B = [50, 30, 255, 0].
    // Luma (299 R + 587 G + 114 B) / 1000 per pixel: 124.2, 18.15, 58.97, 161.7.
    private static byte[] Rgb2x2() => [200, 10, 100, 50, 100, 20, 0, 250, 50, 30, 255, 0];

    private static byte[] Run(RandAugmentOp op, byte[] image, int c, int h, int w, float m, bool negate)
    {
        var x = (byte[])image.Clone();
        RandAugment.ApplyOp(op, x, new byte[x.Length], c, h, w, m, negate);
        return x;
    }

    [Fact]
    public void Color_blends_each_pixel_with_its_own_luma()
    {
        // m = 0.5, negate: factor 1 - 0.45 = 0.55, out = round(0.45 luma + 0.55 v).
        // Pixel 0: 0.45·124.2 = 55.89; R 55.89 + 110 = 165.89 → 166, G + 55 → 111, B + 27.5 → 83.
        // Pixel 1: 8.1675; R + 5.5 → 14, G + 11 → 19, B + 16.5 → 25.
        // Pixel 2: 26.5365; R + 55 → 82, G + 0 → 27, B + 140.25 → 167.
        // Pixel 3: 72.765; R + 27.5 → 100, G + 137.5 → 210, B + 0 → 73.
        Assert.Equal([166, 14, 82, 100, 111, 19, 27, 210, 83, 25, 167, 73], Run(RandAugmentOp.Color, Rgb2x2(), 3, 2, 2, 0.5f, true));
    }

    [Fact]
    public void Contrast_blends_with_the_rounded_mean_luma()
    {
        // Mean luma (124.2 + 18.15 + 58.97 + 161.7) / 4 = 90.755 → 91; out = round(91 + 0.55 (v - 91)).
        // R: 150.95, 46.45, 95.95, 68.45; G: 95.95, 51.95, 40.95, 178.45; B: 68.45, 57.45, 181.2, 40.95.
        Assert.Equal([151, 46, 96, 68, 96, 52, 41, 178, 68, 57, 181, 41], Run(RandAugmentOp.Contrast, Rgb2x2(), 3, 2, 2, 0.5f, true));
    }

    [Fact]
    public void AutoContrast_stretches_each_channel_by_its_own_range()
    {
        // R: [10, 200] → ×255/190: 200 → 255, 10 → 0, 100 → 120.79 → 121, 50 → 53.68 → 54.
        // G: [0, 250] → ×1.02: 102, 20.4 → 20, 0, 255. B: already [0, 255]: unchanged.
        Assert.Equal([255, 0, 121, 54, 102, 20, 0, 255, 50, 30, 255, 0], Run(RandAugmentOp.AutoContrast, Rgb2x2(), 3, 2, 2, 1f, false));
    }

    [Fact]
    public void Equalize_builds_each_channels_lookup_from_its_own_histogram()
    {
        // 30 x 40 = 1200 pixels. R: 510 of 10, 510 of 20, 180 of 30: step = (1200 - 180) / 255 = 4,
        // lut[v] = (2 + pixels below v) / 4: 10 → 0, 20 → 512/4 = 128, 30 → 1022/4 = 255.
        // G: 600 of 5, 600 of 7: step = 600 / 255 = 2: 5 → 1/2 = 0, 7 → 601/2 = 300 → 255.
        // B: all 42: one occupied bin, step 0: unchanged.
        const int plane = 1200;
        var img = new byte[3 * plane];
        for (int i = 0; i < plane; i++)
        {
            img[i] = (byte)(i < 1020 ? (i % 2 == 0 ? 10 : 20) : 30);
            img[plane + i] = (byte)(i % 2 == 0 ? 5 : 7);
            img[2 * plane + i] = 42;
        }
        Assert.Equal(510, img.AsSpan(0, plane).ToArray().Count(v => v == 10));
        var got = Run(RandAugmentOp.Equalize, img, 3, 30, 40, 1f, false);
        for (int i = 0; i < plane; i++)
        {
            Assert.Equal(img[i] switch { 10 => 0, 20 => 128, _ => 255 }, got[i]);
            Assert.Equal(img[plane + i] == 5 ? 0 : 255, got[plane + i]);
            Assert.Equal(42, got[2 * plane + i]);
        }
    }

    [Fact]
    public void Sharpness_blends_the_centre_with_its_13_weighted_smoothing_per_channel()
    {
        // 3x3, only the centre is inside. R: 10 20 30 / 40 100 60 / 70 80 90: (500 + 4·100) / 13
        // = 69.23 → 69; factor 1.9: 69 + 1.9·31 = 127.9 → 128. G: 0 except the centre 13: 65/13 = 5,
        // 5 + 1.9·8 = 20.2 → 20. B: constant 200 stays 200.
        byte[] img = [10, 20, 30, 40, 100, 60, 70, 80, 90, 0, 0, 0, 0, 13, 0, 0, 0, 0, 200, 200, 200, 200, 200, 200, 200, 200, 200];
        var expected = (byte[])img.Clone();
        expected[4] = 128; expected[9 + 4] = 20;
        Assert.Equal(expected, Run(RandAugmentOp.Sharpness, img, 3, 3, 3, 1f, false));
        // factor 0.1 (negate): 69 + 3.1 = 72.1 → 72; 5 + 0.8 → 6.
        expected[4] = 72; expected[9 + 4] = 6;
        Assert.Equal(expected, Run(RandAugmentOp.Sharpness, img, 3, 3, 3, 1f, true));
    }

    // 6x6, pixel (x, y) holds y·6 + x + 1. Rotating by 30° (m = 1), output pixel (x, y) with centre
    // offset p = (x + 0.5 - 3, y + 0.5 - 3) samples the source at R p + (3, 3), R = [cos sin; -sin cos]
    // for +30°. E.g. output (1, 0): p = (-1.5, -2.5) → (3 - 1.299 - 1.25, 3 + 0.75 - 2.165) = (0.45,
    // 1.585) → source (0, 1) = 7. Corners fall outside (0). No sample lands within 0.049 of a pixel
    // edge, so float rounding cannot move one.
    private static readonly byte[] Clockwise30 =
    [
         0,  7,  8,  3,  4,  0,
        13, 13,  8,  9,  4,  5,
        19, 20, 15, 16, 11, 11,
        26, 26, 21, 22, 17, 18,
        32, 33, 28, 29, 24, 24,
         0, 33, 34, 29, 30,  0,
    ];

    private static readonly byte[] Anticlockwise30 =
    [
         0,  3,  4, 11, 12,  0,
         2,  3, 10, 11, 18, 18,
         8,  8, 15, 16, 23, 24,
        13, 14, 21, 22, 29, 29,
        19, 19, 26, 27, 34, 35,
         0, 25, 26, 33, 34,  0,
    ];

    [Fact]
    public void Rotate_by_30_degrees_matches_the_hand_computed_map_in_both_directions()
    {
        var img = Enumerable.Range(1, 36).Select(v => (byte)v).ToArray();
        Assert.Equal(Clockwise30, Run(RandAugmentOp.Rotate, img, 1, 6, 6, 1f, negate: false));
        Assert.Equal(Anticlockwise30, Run(RandAugmentOp.Rotate, img, 1, 6, 6, 1f, negate: true));
        // Every channel gets the same map.
        var rgb = img.Concat(img.Select(v => (byte)(v + 100))).Concat(img.Select(v => (byte)(v + 200))).ToArray();
        var got = Run(RandAugmentOp.Rotate, rgb, 3, 6, 6, 1f, negate: false);
        for (int i = 0; i < 36; i++)
        {
            Assert.Equal(Clockwise30[i], got[i]);
            Assert.Equal(Clockwise30[i] == 0 ? 0 : Clockwise30[i] + 100, got[36 + i]);
            Assert.Equal(Clockwise30[i] == 0 ? 0 : Clockwise30[i] + 200, got[72 + i]);
        }
    }

    [Theory]
    [InlineData(1f, false, 30.0)]    // positive: clockwise as displayed (rows grow downwards)
    [InlineData(1f, true, -30.0)]
    [InlineData(0.5f, false, 15.0)]  // the angle scales with the magnitude
    public void Rotate_turns_a_bar_by_the_magnitudes_angle(float m, bool negate, double degrees)
    {
        // A bar from the centre to the right edge of a 61 x 61 image; after rotation, the centroid of
        // its pixels lies at the rotated angle (atan2 with y downwards), within 1 degree.
        const int n = 61;
        var img = new byte[n * n];
        for (int x = 33; x < n; x++) img[30 * n + x] = 255;
        var got = Run(RandAugmentOp.Rotate, img, 1, n, n, m, negate);
        double sx = 0, sy = 0; int count = 0;
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                if (got[y * n + x] != 0) { sx += x + 0.5 - n / 2.0; sy += y + 0.5 - n / 2.0; count++; }
        double angle = Math.Atan2(sy / count, sx / count) * 180 / Math.PI;
        Assert.True(Math.Abs(angle - degrees) <= 1, $"bar at {angle:F2} degrees, expected {degrees}");
    }

    [Fact]
    public void ShearX_shifts_each_row_by_its_hand_computed_offset()
    {
        // 10 x 10, m = 1: source x = floor(x + 0.5 + 0.3 (y - 4.5)): per row floor(-0.85, -0.55,
        // -0.25, 0.05, 0.35, 0.65, 0.95, 1.25, 1.55, 1.85) = -1, -1, -1, 0, 0, 0, 0, 1, 1, 1.
        int[] offset = [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1];
        var img = Enumerable.Range(0, 100).Select(v => (byte)(v + 1)).ToArray();
        var got = Run(RandAugmentOp.ShearX, img, 1, 10, 10, 1f, false);
        var gotY = Run(RandAugmentOp.ShearY, img, 1, 10, 10, 1f, false);
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 10; x++)
            {
                int sx = x + offset[y];
                Assert.Equal(sx is >= 0 and < 10 ? img[y * 10 + sx] : 0, got[y * 10 + x]);
                int sy = y + offset[x];   // ShearY: the same offsets per column, on rows
                Assert.Equal(sy is >= 0 and < 10 ? img[sy * 10 + x] : 0, gotY[y * 10 + x]);
            }
    }

    [Fact]
    public void TranslateY_negated_moves_the_image_up_and_fills_the_bottom()
    {
        // H = 20, m = 1, negate: ty = +0.45·20 = 9: output row y shows source row y + 9.
        var img = Enumerable.Range(0, 60).Select(v => (byte)(v + 1)).ToArray();   // 20 rows x 3 columns
        var got = Run(RandAugmentOp.TranslateY, img, 1, 20, 3, 1f, true);
        for (int y = 0; y < 20; y++)
            for (int x = 0; x < 3; x++)
                Assert.Equal(y + 9 < 20 ? img[(y + 9) * 3 + x] : 0, got[y * 3 + x]);
    }

    [Fact]
    public void CropFlip_moves_every_channel_alike_and_normalises_each_with_its_own_constants()
    {
        // 3 channels of 2 x 3, padding 1, window (dx, dy) = (2, 0): output (y, x) reads source
        // (y - 1, x + 1), flipped: (y - 1, 3 - x). Row 0 reads the padding (the bias alone).
        byte[] img = [1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60, 100, 110, 120, 130, 140, 150];
        float[] scale = [1f, 0.5f, 0.25f], bias = [0f, -1f, 2f];
        var o = new float[18];
        SampleTransforms.CropFlipNormalise(img, o, 3, 2, 3, 1, 2, 0, true, scale, bias);
        // Flipped row 1: x = 0 → source x 3 (padding), x = 1 → 2, x = 2 → 1.
        Assert.Equal([0, 0, 0, 0, 3, 2,
                      -1, -1, -1, -1, 30 * 0.5f - 1, 20 * 0.5f - 1,
                      2, 2, 2, 2, 120 * 0.25f + 2, 110 * 0.25f + 2], o);
    }
}
