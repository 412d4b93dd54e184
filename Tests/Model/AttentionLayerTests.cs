using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Model;
using ViTScratch.Tests.TestSupport;

namespace ViTScratch.Tests.Model;

/// <summary>
/// The attention layer's own switches, each of which a mutation survived before (Stryker, see
/// docs/testing.md): attention dropout must act in training and only then, to_out exists exactly
/// when vit-pytorch's project_out does, and a head count or head size of 0 is refused.
/// </summary>
public class AttentionLayerTests : ModelTestBase
{
    [Fact]
    public void AttentionDropoutActsInTrainingOnly()
    {
        // heads = 1 and dim_head = dim: no to_out, so no output dropout either; any difference
        // between training and evaluation is the attention dropout's.
        var layer = new Attention(Dev, dim: 8, heads: 1, dimHead: 8, dropout: 0.5f, new DropoutSeeds(3));
        Assert.Null(layer.ToOut);
        Randomise(layer);
        var x = Tensor.FromArray(Dev, RandomValues(2 * 5 * 8), 2, 5, 8);
        layer.Eval();
        var eval = layer.Forward(x).ToArray();
        Assert.Equal(eval, layer.Forward(x).ToArray());
        layer.Train();
        var train = layer.Forward(x).ToArray();
        int differing = 0;
        for (int i = 0; i < eval.Length; i++) if (eval[i] != train[i]) differing++;
        Assert.True(differing > eval.Length / 2, $"only {differing} of {eval.Length} outputs changed with attention dropout 0.5");

        var noDropout = new Attention(Dev, dim: 8, heads: 1, dimHead: 8, dropout: 0f, new DropoutSeeds(3));
        Randomise(noDropout);
        noDropout.Train();
        var y = noDropout.Forward(x).ToArray();
        noDropout.Eval();
        Assert.Equal(y, noDropout.Forward(x).ToArray());
    }

    // The captured weights are softmax(scale q kᵀ) of this layer's own queries and keys, computed
    // here in float64 from the normed input and to_qkv's weight (rows q | k | v, each H·d). A wrong
    // offset of k inside qkv (mutation testing changed `Heads * DimHead` to `Heads / DimHead`, which
    // read k from q's columns) still gives rows that sum to 1, so the model test cannot see it.
    [Fact]
    public void CapturedWeightsAreTheSoftmaxOfThisLayersQueriesAndKeys()
    {
        const int B = 2, N = 5, Dim = 8, H = 2, Dh = 4, Inner = H * Dh;
        var layer = new Attention(Dev, Dim, H, Dh, dropout: 0f, new DropoutSeeds(1));
        Randomise(layer);
        layer.Eval();
        layer.CaptureWeights = true;
        var x = Tensor.FromArray(Dev, RandomValues(B * N * Dim), B, N, Dim);
        double[] xn;
        using (Tensor.NoGrad())
        {
            layer.Forward(x);
            xn = layer.Norm.Forward(x).ToArray().Select(v => (double)v).ToArray(); // xn: [B, N, Dim], as the layer saw it
        }
        var w = layer.ToQkv.Weight.Value.ToArray(); // [3·Inner, Dim]
        var map = layer.LastWeights!;
        Assert.Equal([B, H, N, N], map.Shape);

        // One projected value and its magnitude Σ|xn||w|; `row` is the weight row (q: h·d + c, k: Inner + h·d + c).
        (double Value, double Mag) Project(int b, int i, int row)
        {
            double v = 0, m = 0;
            for (int e = 0; e < Dim; e++) { double t = xn[(b * N + i) * Dim + e] * w[row * Dim + e]; v += t; m += Math.Abs(t); }
            return (v, m);
        }
        double scale = 1 / Math.Sqrt(Dh), u = Tol.U;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < N; i++)
                {
                    var s = new double[N];
                    double worst = 0; // the largest bound on a score's float32 error in this row
                    for (int j = 0; j < N; j++)
                    {
                        double dot = 0, err = 0, mag = 0;
                        for (int c = 0; c < Dh; c++)
                        {
                            var (q, qm) = Project(b, i, h * Dh + c);
                            var (k, km) = Project(b, j, Inner + h * Dh + c);
                            dot += q * k;
                            mag += Math.Abs(q * k);
                            err += Dim * u * (qm * Math.Abs(k) + km * Math.Abs(q)); // q and k each a float32 sum of Dim terms
                        }
                        s[j] = scale * dot;
                        worst = Math.Max(worst, scale * (err + Dh * u * mag) + u * Math.Abs(s[j])); // the dot's Dh terms, then the scale
                    }
                    double max = s.Max(), sum = s.Sum(v => Math.Exp(v - max));
                    for (int j = 0; j < N; j++)
                    {
                        double p = Math.Exp(s[j] - max) / sum;
                        // Scores off by at most `worst` move a softmax entry by at most p (e^(2 worst) - 1);
                        // the softmax itself adds (N + 2R + 16) U p, R the row's range (RowOpsMatrixTests' model).
                        double bound = p * (Math.Exp(2 * worst) - 1 + (N + 2 * (max - s.Min()) + 16) * u);
                        float got = map.Weights[((b * H + h) * N + i) * N + j];
                        Assert.True(Math.Abs(got - p) <= bound, $"weight [{b}, {h}, {i}, {j}]: {got} against {p}, bound {bound:E2}");
                    }
                }
    }

    // Parameters start zeroed until the model's initializer runs: give every one random values.
    private void Randomise(Attention layer)
    {
        foreach (var p in layer.Parameters()) p.Value.CopyFrom(RandomValues(p.Value.Length));
    }

    [Theory]
    [InlineData(1, 8, false)] // project_out = not (heads == 1 and dim_head == dim)
    [InlineData(2, 8, true)]
    [InlineData(1, 4, true)]
    [InlineData(2, 4, true)]
    public void ToOutExistsExactlyWhenVitPytorchProjectsOut(int heads, int dimHead, bool projects)
    {
        var layer = new Attention(Dev, dim: 8, heads, dimHead, dropout: 0f, new DropoutSeeds(1));
        Assert.Equal(projects, layer.ToOut is not null);
        Assert.Equal([3 * heads * dimHead, 8], layer.ToQkv.Weight.Value.Shape);
        var x = Tensor.FromArray(Dev, RandomValues(1 * 3 * 8), 1, 3, 8);
        Assert.Equal([1, 3, 8], layer.Forward(x).Shape);
    }

    [Theory, InlineData(0, 4), InlineData(2, 0)]
    public void ZeroHeadsOrHeadSizeIsRefused(int heads, int dimHead)
    {
        var err = Assert.Throws<ViTScratchException>(() => new Attention(Dev, 8, heads, dimHead, 0f, new DropoutSeeds(1)));
        Assert.Contains("heads ≥ 1 and dim_head ≥ 1", err.Message);
    }
}
