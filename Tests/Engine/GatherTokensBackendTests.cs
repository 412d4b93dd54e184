using ViTScratch.Engine;
using ViTScratch.Tests.TestSupport;

namespace ViTScratch.Tests.Engine;

/// <summary>
/// Patch dropout's gather on every backend of the matrix: the op is strided copies, so each
/// backend's CopyStrided must place the kept rows and scatter their gradient (zeros elsewhere)
/// exactly like the float64 reference below.
/// </summary>
public class GatherTokensBackendTests
{
    public static TheoryData<string> Backends
    {
        get { var d = new TheoryData<string>(); foreach (var b in BackendMatrix.Available) d.Add(b); return d; }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void GatherTokensForwardAndBackwardMatchTheReference(string backend)
    {
        const int b = 3, n = 7, d = 5;
        int[] kept = [0, 2, 3, 6]; // runs of 1, 2 and 1 tokens
        var rng = new Random(77);
        var xs = Enumerable.Range(0, b * n * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var ws = Enumerable.Range(0, b * kept.Length * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

        using var dev = Device.Create(backend);
        var x = Tensor.FromArray(dev, xs, b, n, d);
        x.RequiresGrad = true;
        var y = Ops.GatherTokens(x, kept);                                              // y: [B, K, D]
        Ops.Sum(Ops.Mul(y, Tensor.FromArray(dev, ws, b, kept.Length, d))).Backward();
        var yv = y.ToArray();
        var gx = x.GradToArray();

        var expectedGrad = new double[b * n * d];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < kept.Length; j++)
                for (int c = 0; c < d; c++)
                {
                    int src = (i * n + kept[j]) * d + c, dst = (i * kept.Length + j) * d + c;
                    Assert.Equal(xs[src], yv[dst]);
                    expectedGrad[src] += ws[dst];
                }
        for (int i = 0; i < gx.Length; i++) Assert.Equal(expectedGrad[i], gx[i], 1e-6);
    }
}
