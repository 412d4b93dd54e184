using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using ViTScratch.Training.Optim;

namespace ViTScratch.Tests.Training;

/// <summary>
/// The optimizers pack all parameters into one buffer (Engine/FlatParameters.cs) and update it
/// in at most two launches. On every backend of the matrix: packing keeps values and gradients,
/// the tensors read and write their slices, and a packed step gives exactly what the update
/// kernel gives tensor by tensor (the update is elementwise), for AdamW and SGD, with and
/// without weight decay on each parameter.
/// </summary>
public class FlatOptimizerTests
{
    public static TheoryData<string> Backends
    {
        get { var d = new TheoryData<string>(); foreach (var b in BackendMatrix.Available) d.Add(b); return d; }
    }

    private static float[] RandomValues(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    // Three parameters with ragged sizes, decay on the first and last: packed as [a, c | b].
    private static readonly (int[] Shape, bool Decay)[] Layout = [([3, 5], true), ([7], false), ([2, 3, 2], true)];

    private static (Tensor[] Params, float[][] Values, float[][] Grads) MakeParams(Device dev, int seed)
    {
        var rng = new Random(seed);
        var ps = new Tensor[Layout.Length];
        var values = new float[Layout.Length][];
        var grads = new float[Layout.Length][];
        for (int i = 0; i < Layout.Length; i++)
        {
            int n = ShapeOf.Count(Layout[i].Shape);
            values[i] = RandomValues(rng, n);
            grads[i] = RandomValues(rng, n);
            ps[i] = Tensor.FromArray(dev, values[i], Layout[i].Shape);
            ps[i].RequiresGrad = true;
        }
        return (ps, values, grads);
    }

    // p.Grad += g through Backward (d/dp sum(p * g) = g): the path a training step takes.
    private static void AddGrad(Tensor p, float[] g)
    {
        using var s = new TensorScope();
        Ops.Sum(Ops.Mul(p, Tensor.FromArray(p.Device, g, p.Shape))).Backward();
    }

    [Theory, MemberData(nameof(Backends))]
    public void PackingKeepsValuesAndGradientsAndSharesStorage(string backend)
    {
        using var dev = Device.Create(backend);
        var (ps, values, grads) = MakeParams(dev, 11);
        AddGrad(ps[1], grads[1]);                       // one tensor already has a gradient
        var flat = new FlatParameters([ps[2], ps[0], ps[1]]);

        Assert.Equal(15 + 7 + 12, flat.Length);
        Assert.Equal([0, 12, 27, 34], Enumerable.Range(0, 4).Select(flat.Offset));
        for (int i = 0; i < ps.Length; i++) Assert.Equal(values[i], ps[i].ToArray());
        Assert.Equal(grads[1], ps[1].GradToArray());
        Assert.Equal(new float[15], ps[0].GradToArray());

        AddGrad(ps[1], grads[1]);                       // Backward accumulates into the slice
        var all = new float[flat.Length];
        dev.Kernels.Download(flat.Grad, all);
        Assert.Equal(grads[1].Select(g => g + g), all.AsSpan(27, 7).ToArray());

        ps[0].CopyFrom(grads[0]);                       // a write through the tensor lands in the flat buffer
        dev.Kernels.Download(flat.Data, all);
        Assert.Equal(grads[0], all.AsSpan(12, 15).ToArray());
        Assert.Equal(values[2], all.AsSpan(0, 12).ToArray());
    }

    [Theory, MemberData(nameof(Backends))]
    public void PackedAdamWEqualsTheKernelTensorByTensor(string backend)
    {
        using var dev = Device.Create(backend);
        var k = dev.Kernels;
        var (ps, values, grads) = MakeParams(dev, 23);
        var opt = new AdamW(ps.Select((p, i) => new OptimParam("p" + i, p, Layout[i].Decay)).ToList(), weightDecay: 0.1f);

        // Reference: the same kernel on separate buffers, one launch per parameter.
        var refP = values.Select(v => k.Upload(v)).ToArray();
        var refM = values.Select(v => k.Allocate(v.Length)).ToArray();
        var refV = values.Select(v => k.Allocate(v.Length)).ToArray();
        for (int step = 1; step <= 3; step++)
        {
            opt.ZeroGrad();
            for (int i = 0; i < ps.Length; i++) AddGrad(ps[i], grads[i].Select(g => g * step).ToArray());
            opt.Step(0.01f);
            for (int i = 0; i < ps.Length; i++)
            {
                var g = k.Upload(grads[i].Select(x => x * step).ToArray());
                var args = new AdamWArgs(0.01f, opt.Beta1, opt.Beta2, opt.Eps, Layout[i].Decay ? 0.1f : 0f, step);
                k.AdamWStep(refP[i], g, refM[i], refV[i], values[i].Length, args, null, 0f);
            }
        }
        for (int i = 0; i < ps.Length; i++) Assert.Equal(k.Download(refP[i]), ps[i].ToArray());
        // The checkpoint view of the moments is per parameter, in the order given.
        var state = opt.SaveState();
        for (int i = 0; i < ps.Length; i++) Assert.Equal(k.Download(refM[i]), state["adamw.m.p" + i].Values);
    }

    [Theory, MemberData(nameof(Backends))]
    public void PackedSgdWithClippingEqualsTheKernelTensorByTensor(string backend)
    {
        using var dev = Device.Create(backend);
        var k = dev.Kernels;
        var (ps, values, grads) = MakeParams(dev, 37);
        var opt = new Sgd(ps.Select((p, i) => new OptimParam("p" + i, p, Layout[i].Decay)).ToList(),
            momentum: 0.9f, nesterov: true, weightDecay: 0.01f, maxGradNorm: 0.5f);
        foreach (var (p, i) in ps.Select((p, i) => (p, i))) AddGrad(p, grads[i]);
        opt.Step(0.1f);

        // The global norm over all gradients, in float64, then each parameter's update by hand:
        // first step, so the momentum buffer is the (clipped, decayed) gradient itself.
        double normSq = grads.SelectMany(g => g).Sum(g => (double)g * g);
        Assert.Equal(normSq, opt.LastGradNormSquared(), 1e-5);
        double clip = Math.Min(1, 0.5 / (Math.Sqrt(normSq) + 1e-6));   // KernelMath.ClipFactor
        for (int i = 0; i < ps.Length; i++)
        {
            var got = ps[i].ToArray();
            for (int j = 0; j < got.Length; j++)
            {
                double g = grads[i][j] * clip + (Layout[i].Decay ? 0.01 * values[i][j] : 0);
                double expected = values[i][j] - 0.1 * (g + 0.9 * g);   // Nesterov: g + μ b, b = g
                Assert.Equal(expected, got[j], 1e-6);
            }
        }
    }

    [Fact]
    public void RejectsATensorListedTwice()
    {
        using var dev = Device.Create("cpu");
        var t = Tensor.Zeros(dev, 3);
        var e = Assert.Throws<ViTScratchException>(() => new FlatParameters([t, t]));
        Assert.Contains("listed twice", e.Message);
    }
}
