using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>Helpers for engine-level tests, which run on the CPU backend.</summary>
public abstract class EngineTestBase : IDisposable
{
    protected readonly Device Dev = Device.Create("cpu");
    protected readonly Random Rng = new(1234);

    protected Tensor Rand(params int[] shape) => Rand(true, shape);

    protected Tensor Rand(bool requiresGrad, params int[] shape)
    {
        var values = new float[ShapeOf.Count(shape)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(Rng.NextDouble() * 2 - 1);
        var t = Tensor.FromArray(Dev, values, shape);
        t.RequiresGrad = requiresGrad;
        return t;
    }

    /// <summary>
    /// Checks d(sum(w ∘ f(inputs)))/d(input) for every input against central differences in float32.
    /// Step h and tolerance are chosen per op by the caller: for ops linear in the perturbed input
    /// the difference quotient is exact up to rounding, so tight tolerances apply; for nonlinear
    /// ops truncation error O(h²) and cancellation O(ε/h) set the floor (~1e-3 relative at h = 1e-2).
    /// The kernels' own backward math is verified in float64 elsewhere; this checks the engine's wiring.
    /// </summary>
    protected void GradCheck(Func<Tensor[], Tensor> f, Tensor[] inputs, float h = 1e-2f, float tol = 2e-3f)
    {
        Tensor probe = f(inputs);
        var w = new float[probe.Length];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(Rng.NextDouble() * 2 - 1);
        var weights = Tensor.FromArray(Dev, w, probe.Shape);

        foreach (var x in inputs) if (x.RequiresGrad) x.ZeroGrad();
        var loss = Ops.Sum(Ops.Mul(f(inputs), weights));
        loss.Backward();

        double Loss()
        {
            using var _ = Tensor.NoGrad();
            var y = f(inputs).ToArray();
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += (double)y[i] * w[i];
            return s;
        }

        foreach (var x in inputs)
        {
            if (!x.RequiresGrad) continue;
            var analytic = x.GradToArray();
            var values = x.ToArray();
            double maxAbs = 1e-3;
            foreach (var g in analytic) maxAbs = Math.Max(maxAbs, Math.Abs(g));
            for (int i = 0; i < values.Length; i++)
            {
                float orig = values[i];
                values[i] = orig + h; x.CopyFrom(values); double up = Loss();
                values[i] = orig - h; x.CopyFrom(values); double down = Loss();
                values[i] = orig; x.CopyFrom(values);
                double numeric = (up - down) / (2 * h);
                double err = Math.Abs(numeric - analytic[i]) / maxAbs;
                Assert.True(err <= tol, $"{x.Name ?? "input"}[{i}] of {ShapeOf.Format(x.Shape)}: analytic {analytic[i]}, numeric {numeric}, relative error {err:E2} > {tol:E1}");
            }
        }
    }

    public void Dispose() => Dev.Dispose();
}
