using ViTScratch.Engine;

namespace ViTScratch.Tests.Engine;

/// <summary>
/// A leaf's gradient is a sum: over the paths that use it and over Backward calls until ZeroGrad.
/// The gradient checks zero the leaf and use it once, so an op whose backward overwrote the leaf's
/// gradient instead of adding to it passed them (SplitHeads and GatherTokens with
/// <c>accumulate: false</c> survived mutation testing). Both sums are exact here: the second pass
/// adds the same float32 values again, and the extra path's gradient is added once.
/// </summary>
public class GradientAccumulationTests : EngineTestBase
{
    public static TheoryData<string> Ops_ => new() { "SplitHeads", "GatherTokens", "MergeHeads", "SelectToken", "ConcatTokens", "Dropout", "Patchify" };

    private Tensor? _other;

    private Tensor Apply(string op, Tensor x) => op switch
    {
        "SplitHeads" => Ops.SplitHeads(x, 2, 2, columnOffset: 1),                 // x: [2, 4, 6]
        "GatherTokens" => Ops.GatherTokens(x, [0, 2, 3]),
        "MergeHeads" => Ops.MergeHeads(Ops.Reshape(x, [2, 2, 2, 6])),
        "SelectToken" => Ops.SelectToken(x, 1),
        "ConcatTokens" => Ops.ConcatTokens(x, _other ??= Rand(false, 2, 3, 6)), // x once: each pass adds one value per entry
        "Dropout" => Ops.Dropout(x, 0.3f, 11),
        "Patchify" => Ops.Patchify(Ops.Reshape(x, [2, 3, 2, 4]), 2),
        _ => throw new ArgumentException(op),
    };

    private (Tensor X, Func<Tensor> Loss) Setup(string op)
    {
        var x = Rand(2, 4, 6);
        Tensor probe;
        using (Tensor.NoGrad()) probe = Apply(op, x);
        var w = Rand(false, probe.Shape);
        return (x, () => Ops.Sum(Ops.Mul(Apply(op, x), w)));
    }

    [Theory, MemberData(nameof(Ops_))]
    public void ALeafGradientAddsUpOverBackwardCalls(string op)
    {
        var (x, loss) = Setup(op);
        x.ZeroGrad();
        loss().Backward();
        var once = x.GradToArray();
        Assert.Contains(once, g => g != 0);
        loss().Backward();
        var twice = x.GradToArray();
        for (int i = 0; i < once.Length; i++) Assert.True(twice[i] == 2 * once[i], $"{op}: [{i}] {twice[i]} after two passes, {once[i]} after one");
    }

    [Theory, MemberData(nameof(Ops_))]
    public void ATensorUsedTwiceGetsBothGradients(string op)
    {
        var (x, loss) = Setup(op);
        x.ZeroGrad();
        loss().Backward();
        var viaOp = x.GradToArray();
        var v = Rand(false, x.Shape);
        x.ZeroGrad();
        Ops.Add(loss(), Ops.Sum(Ops.Mul(x, v))).Backward();
        var both = x.GradToArray();
        var direct = v.ToArray();
        for (int i = 0; i < both.Length; i++)
            Assert.True(both[i] == viaOp[i] + direct[i], $"{op}: [{i}] {both[i]}, expected {viaOp[i]} + {direct[i]}");
    }
}
