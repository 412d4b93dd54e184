using ViTScratch.Kernels;

namespace ViTScratch.Engine;

/// <summary>
/// Differentiable tensor operations. Each op checks shapes, launches its forward kernel, and —
/// when a gradient is needed — registers one small closure that launches the backward kernels.
/// A backward closure writes each input's gradient by the engine's `=` / `+=` rule (Autograd.cs):
/// the first writer in a pass overwrites, later ones add, which is what makes a tensor used twice
/// receive both contributions without a zero-fill first.
/// The ops are split by family over the files next to this one.
/// </summary>
public static partial class Ops
{
    /// <summary>Creates the result tensor of an op and wires it into the tape when a gradient is needed.</summary>
    private static Tensor Result(string op, int[] shape, params Tensor[] inputs)
    {
        var device = inputs[0].Device;
        foreach (var t in inputs)
            if (!ReferenceEquals(t.Device, device))
                throw new ViTScratchException($"{op}: inputs live on different devices ({device.Name} and {t.Device.Name})");
        var result = Tensor.Empty(device, shape);
        result.Name = op;
        if (Tensor.GradEnabled)
        {
            foreach (var t in inputs)
                if (t.RequiresGrad) { result.RequiresGrad = true; break; }
            if (result.RequiresGrad) result.Parents = inputs;
        }
        return result;
    }

    /// <summary>Registers the backward closure of <paramref name="result"/> if it takes part in autograd.</summary>
    private static void OnBackward(Tensor result, Action backward)
    {
        if (result.RequiresGrad) result.BackwardFn = backward;
    }

    private static ViTScratchException ShapeError(string op, Tensor a, Tensor b, string why) =>
        new($"{op}: shapes {ShapeOf.Format(a.Shape)} and {ShapeOf.Format(b.Shape)} {why}");

    private static void RequireRank(string op, Tensor t, int rank, string layout)
    {
        if (t.Rank != rank)
            throw new ViTScratchException($"{op}: expected a rank-{rank} tensor {layout}, got shape {ShapeOf.Format(t.Shape)}");
    }

    private static int[] Dims(params int[] dims) => dims;
}
