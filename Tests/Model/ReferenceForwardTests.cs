using ViTScratch.Kernels;
using ViTScratch.Model;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The model's forward pass against an independent, loop-by-loop float64 transcription of
/// vit-pytorch's ViT.forward working directly on the state_dict. This pins the semantics the
/// gradient check cannot see: the (p1 p2 c) patch order, q|k|v chunk order, the head layout
/// 'b n (h d)', where the cls token goes, pooling, and which LayerNorm sits where.
/// </summary>
public class ReferenceForwardTests : ModelTestBase
{
    [Theory]
    [InlineData(12, 4, 3, 16, 2, 2, 8, 24, Pooling.Cls)]
    [InlineData(12, 4, 3, 16, 2, 2, 8, 24, Pooling.Mean)]
    [InlineData(8, 2, 1, 12, 1, 3, 5, 7, Pooling.Cls)]   // 16 patches, ragged head size
    [InlineData(8, 4, 2, 6, 2, 1, 6, 9, Pooling.Mean)]   // one full-width head: no to_out
    public void MatchesFloat64Reference(int image, int patch, int channels, int dim, int depth, int heads, int dimHead, int mlp, Pooling pool)
    {
        var config = new ViTConfig(image, patch, 5, dim, depth, heads, mlp, pool, channels, dimHead);
        var vit = new ViT(config, Dev, seed: 13);
        foreach (var p in vit.Parameters())
        {
            var v = RandomValues(p.Length, 0.5); // spread values so attention is far from uniform
            if (p.Init == ParameterInit.Ones) for (int i = 0; i < v.Length; i++) v[i] += 1f;
            p.Value.CopyFrom(v);
        }
        vit.Eval();
        var images = RandomImages(config, 3);
        var actual = Logits(vit, images);
        var expected = Reference(config, vit.StateDict().ToDictionary(t => t.Name, t => t.Data), images.ToArray(), 3);

        // float32 through ~10 layers of sums of ≤ 50 terms: relative rounding ~1e-6 per op, so 1e-4 of
        // the largest logit leaves a wide margin while any layout error changes logits by O(1).
        double scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-4 * scale, $"logit {i}: model {actual[i]}, reference {expected[i]}");
    }

    internal static double[] Reference(ViTConfig c, Dictionary<string, float[]> w, float[] img, int batch)
    {
        int p = c.PatchSize, g = c.ImageSize / p, n = g * g, pd = c.PatchDim, d = c.Dim, inner = c.InnerDim;
        var logits = new double[batch * c.NumClasses];
        for (int b = 0; b < batch; b++)
        {
            // Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)')
            var patches = new double[n][];
            for (int gh = 0; gh < g; gh++)
                for (int gw = 0; gw < g; gw++)
                {
                    var v = new double[pd];
                    for (int p1 = 0; p1 < p; p1++)
                        for (int p2 = 0; p2 < p; p2++)
                            for (int ch = 0; ch < c.Channels; ch++)
                                v[(p1 * p + p2) * c.Channels + ch] = img[((b * c.Channels + ch) * c.ImageSize + gh * p + p1) * c.ImageSize + gw * p + p2];
                    patches[gh * g + gw] = LayerNorm(Linear(LayerNorm(v, w, "to_patch_embedding.1"), w, "to_patch_embedding.2"), w, "to_patch_embedding.3");
                }
            var x = new double[n + 1][];
            x[0] = w["cls_token"].Select(f => (double)f).ToArray();
            for (int t = 0; t < n; t++) x[t + 1] = patches[t];
            for (int t = 0; t <= n; t++)
                for (int j = 0; j < d; j++) x[t][j] += w["pos_embedding"][t * d + j];

            for (int layer = 0; layer < c.Depth; layer++)
            {
                string a = $"transformer.layers.{layer}.0.", f = $"transformer.layers.{layer}.1.";
                var qkv = x.Select(row => Linear(LayerNorm(row, w, a + "norm"), w, a + "to_qkv")).ToArray(); // chunk(3): q | k | v
                var merged = new double[n + 1][];
                for (int t = 0; t <= n; t++) merged[t] = new double[inner];
                for (int h = 0; h < c.Heads; h++)
                    for (int i = 0; i <= n; i++)
                    {
                        var s = new double[n + 1];
                        for (int j = 0; j <= n; j++)
                        {
                            for (int e = 0; e < c.DimHead; e++) s[j] += qkv[i][h * c.DimHead + e] * qkv[j][inner + h * c.DimHead + e];
                            s[j] /= Math.Sqrt(c.DimHead);
                        }
                        double max = s.Max(), sum = 0;
                        for (int j = 0; j <= n; j++) sum += s[j] = Math.Exp(s[j] - max);
                        for (int j = 0; j <= n; j++)
                            for (int e = 0; e < c.DimHead; e++) merged[i][h * c.DimHead + e] += s[j] / sum * qkv[j][2 * inner + h * c.DimHead + e];
                    }
                for (int t = 0; t <= n; t++)
                {
                    var o = c.ProjectOut ? Linear(merged[t], w, a + "to_out.0") : merged[t];
                    for (int j = 0; j < d; j++) x[t][j] += o[j];
                    var hidden = Linear(LayerNorm(x[t], w, f + "net.0"), w, f + "net.1").Select(z => z * 0.5 * (1 + Erf.Of((float)(z / Math.Sqrt(2))))).ToArray();
                    var y = Linear(hidden, w, f + "net.4");
                    for (int j = 0; j < d; j++) x[t][j] += y[j];
                }
            }
            x = x.Select(row => LayerNorm(row, w, "transformer.norm")).ToArray();
            var pooled = c.Pool == Pooling.Cls ? x[0] : Enumerable.Range(0, d).Select(j => x.Average(row => row[j])).ToArray();
            Linear(pooled, w, "mlp_head").CopyTo(logits, b * c.NumClasses);
        }
        return logits;
    }

    private static double[] Linear(double[] x, Dictionary<string, float[]> w, string name)
    {
        var weight = w[name + ".weight"];
        int outF = weight.Length / x.Length;
        var y = new double[outF];
        for (int o = 0; o < outF; o++)
        {
            double s = w.TryGetValue(name + ".bias", out var bias) ? bias[o] : 0;
            for (int i = 0; i < x.Length; i++) s += weight[o * x.Length + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    private static double[] LayerNorm(double[] x, Dictionary<string, float[]> w, string name)
    {
        double mean = x.Average(), var = x.Average(v => (v - mean) * (v - mean)), rstd = 1 / Math.Sqrt(var + 1e-5);
        return x.Select((v, i) => (v - mean) * rstd * w[name + ".weight"][i] + w[name + ".bias"][i]).ToArray();
    }
}
