using ViTScratch.Kernels;
using ViTScratch.Tests.TestSupport;
using Xunit;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.Kernels;

// Softmax, log-softmax, cross-entropy and accuracy against the float64 reference.
//
// Error model shared by the exp-based bounds below. With m the row maximum, exp(x - m) has the
// relative error of exp itself (a few ulps; GPU exp2-based versions add |x - m| ulps through the
// scaling of the argument), so 2|x - m| + 8 U per element; a row sum of n positive terms adds n U.
// Hence the relative error of a softmax probability is at most (cols + 2 R + 16) U with R the
// row's range max - min. Tiny probabilities may flush to zero on GPUs: an absolute floor of
// 2^-126 (the smallest normal float) covers that.

public sealed record RowCase(int Rows, int Cols, double Range, float Smoothing)
{
    // The GPU's register-resident row kernels (RowMath) give each row a team of 4, 8, 16 or 32
    // lanes with up to 12 values per lane: (3, 48) team 4 with all slots; (70, 17) team 4 with the
    // second group mostly past the end; (5, 96) team 8 full; (3, 257) team 32 (the ViT's 257-token
    // attention rows); (2, 384) the widest register row; (2, 385) one over: the looping kernels.
    // 128 and 192 columns (the model's dims) take the 16-lane team.
    private static readonly (int, int)[] GpuTeams = [(3, 48), (70, 17), (5, 96), (3, 257), (2, 384), (2, 385)];

    public static IEnumerable<RowCase> For(bool slow)
    {
        var shapes = slow
            ? new[] { (1, 1), (1, 7), (3, 9), (5, 33), (2, 17), (9, 7), (17, 65), (9, 10), (3, 37), (2, 128), (3, 192), GpuTeams[0], GpuTeams[1], GpuTeams[2], GpuTeams[3], GpuTeams[4], GpuTeams[5] }
            : new[] { (1, 1), (1, 7), (3, 8), (5, 9), (2, 16), (4, 17), (7, 65), (3, 129), (65, 10), (33, 100), (300, 129), (2, 128), (3, 192),
                      GpuTeams[0], GpuTeams[1], GpuTeams[2], GpuTeams[3], GpuTeams[4], GpuTeams[5] };
        int v = 0;
        foreach (var (r, c) in shapes)
        {
            v++;
            yield return new(r, c, 4, v % 2 == 0 ? 0.1f : 0f);
        }
        // Logits far apart: exp(x) without subtracting the row maximum overflows float here.
        yield return new(3, slow ? 7 : 65, 100, 0.1f);
    }
}

[Collection(BackendCollection.Name)]
public class RowOpsMatrixTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    public static TheoryData<string, RowCase> Rows => BackendMatrix.Rows(RowCase.For);

    private const double Tiny = 1.1754943508222875e-38; // 2^-126

    private static (double max, double min) RowRange(double[] x, int r, int cols)
    {
        double max = double.NegativeInfinity, min = double.PositiveInfinity;
        for (int c = 0; c < cols; c++) { max = Math.Max(max, x[r * cols + c]); min = Math.Min(min, x[r * cols + c]); }
        return (max, min);
    }

    private static double RelP(double[] x, int r, int cols)
    {
        var (max, min) = RowRange(x, r, cols);
        return (cols + 2 * (max - min) + 16) * U;
    }

    [Theory, MemberData(nameof(Rows))]
    public void SoftmaxForward(string backend, RowCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"softmax {c}");
        int n = c.Rows * c.Cols;
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(n, -c.Range, c.Range));
        var y = run.Poisoned("y", n);
        k.SoftmaxForward(x, y, c.Rows, c.Cols);
        R.SoftmaxForward(x.Ref, y.Ref, c.Rows, c.Cols);
        run.Check(y, i => RelP(x.Ref, i / c.Cols, c.Cols) * y.Ref[i] + Tiny);
        run.CheckRest();
    }

    // dx = dx0 + y (dy - dot), dot = Σ y dy: the dot is within (cols + 2) U Σ|y dy|; the rest is
    // three roundings: |error| ≤ (cols + 4) U |y| (Σ|y dy| + |dy|) + 2U (|dx0| + |y (dy - dot)|).
    [Theory, MemberData(nameof(Rows))]
    public void SoftmaxBackward(string backend, RowCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"softmax' {c}");
        int n = c.Rows * c.Cols;
        var probs = new double[n];
        R.SoftmaxForward(rng.Floats(n, -c.Range, c.Range).ToDouble(), probs, c.Rows, c.Cols);
        using var run = new OpRun(k);
        var y = run.With("y", probs.ToFloat());
        var dy = run.With("dy", rng.Floats(n));
        var dx = run.With("dx", rng.Floats(n));
        var absDot = new double[c.Rows];
        for (int i = 0; i < n; i++) absDot[i / c.Cols] += Math.Abs(y.Ref[i] * dy.Ref[i]);
        k.SoftmaxBackward(y, dy, dx, c.Rows, c.Cols);
        R.SoftmaxBackward(y.Ref, dy.Ref, dx.Ref, c.Rows, c.Cols);
        run.Check(dx, i => (c.Cols + 4) * U * Math.Abs(y.Ref[i]) * (absDot[i / c.Cols] + Math.Abs(dy.Ref[i]))
                           + 2 * U * (Math.Abs(dx.Init[i]) + Math.Abs(dx.Ref[i] - dx.Init[i])));
        run.CheckRest();
    }

    // y = x - lse: lse = m + log Σ exp(x - m) is off by the sum's relative error (cols + R + 8) U
    // plus roundings of |lse|; the subtraction adds U |y|. Bound: (cols + 2R + 16) U + 2U (|lse| + |x| + |y|).
    [Theory, MemberData(nameof(Rows))]
    public void LogSoftmaxForward(string backend, RowCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"logsoftmax {c}");
        int n = c.Rows * c.Cols;
        using var run = new OpRun(k);
        var x = run.With("x", rng.Floats(n, -c.Range, c.Range));
        var y = run.Poisoned("y", n);
        k.LogSoftmaxForward(x, y, c.Rows, c.Cols);
        R.LogSoftmaxForward(x.Ref, y.Ref, c.Rows, c.Cols);
        run.Check(y, i =>
        {
            double lse = x.Ref[i] - y.Ref[i];
            return RelP(x.Ref, i / c.Cols, c.Cols) + 2 * U * (Math.Abs(lse) + Math.Abs(x.Ref[i]) + Math.Abs(y.Ref[i]));
        });
        run.CheckRest();
    }

    // dx = dx0 + dy - exp(y) S, S = Σ dy: S is within (cols + 2) U Σ|dy|, exp(y) within (2|y| + 8) U
    // relative; then three roundings. Bound: exp(y) (cols + 2) U Σ|dy| + exp(y) |S| (2|y| + 10) U
    // + 2U (|dx0| + |dy| + exp(y) |S|).
    [Theory, MemberData(nameof(Rows))]
    public void LogSoftmaxBackward(string backend, RowCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"logsoftmax' {c}");
        int n = c.Rows * c.Cols;
        var logp = new double[n];
        R.LogSoftmaxForward(rng.Floats(n, -c.Range, c.Range).ToDouble(), logp, c.Rows, c.Cols);
        using var run = new OpRun(k);
        var y = run.With("y", logp.ToFloat());
        var dy = run.With("dy", rng.Floats(n));
        var dx = run.With("dx", rng.Floats(n));
        var sum = new double[c.Rows]; var absSum = new double[c.Rows];
        for (int i = 0; i < n; i++) { sum[i / c.Cols] += dy.Ref[i]; absSum[i / c.Cols] += Math.Abs(dy.Ref[i]); }
        k.LogSoftmaxBackward(y, dy, dx, c.Rows, c.Cols);
        R.LogSoftmaxBackward(y.Ref, dy.Ref, dx.Ref, c.Rows, c.Cols);
        run.Check(dx, i =>
        {
            int r = i / c.Cols;
            double e = Math.Exp(y.Ref[i]), t = e * Math.Abs(sum[r]);
            return e * (c.Cols + 2) * U * absSum[r] + t * (2 * Math.Abs(y.Ref[i]) + 10) * U
                   + 2 * U * (Math.Abs(dx.Init[i]) + Math.Abs(dy.Ref[i]) + t) + Tiny;
        });
        run.CheckRest();
    }

    // loss = lse - Σ target_c x_c: lse as in log-softmax; the target-weighted sum is within
    // (C + 2) U ((1 - s)|x_label| + (s/C) Σ|x|). Bound: (C + 2R + 16) U (1 + |lse| + |x_label| + (s/C) Σ|x|).
    [Theory, MemberData(nameof(Rows))]
    public void CrossEntropyForward(string backend, RowCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"ce {c}");
        int n = c.Rows * c.Cols;
        using var run = new OpRun(k);
        var logits = run.With("logits", rng.Floats(n, -c.Range, c.Range));
        var labels = run.With("labels", rng.Labels(c.Rows, c.Cols));
        var losses = run.Poisoned("losses", c.Rows);
        k.CrossEntropyForward(logits, labels, losses, c.Rows, c.Cols, c.Smoothing);
        R.CrossEntropyForward(logits.Ref, labels.Ref, losses.Ref, c.Rows, c.Cols, c.Smoothing);
        run.Check(losses, r =>
        {
            double absSum = 0;
            for (int j = 0; j < c.Cols; j++) absSum += Math.Abs(logits.Ref[r * c.Cols + j]);
            var (max, min) = RowRange(logits.Ref, r, c.Cols);
            double lse = R.LogSumExp(logits.Ref, r * c.Cols, c.Cols);
            double xl = Math.Abs(logits.Ref[r * c.Cols + (int)labels.Ref[r]]);
            return (c.Cols + 2 * (max - min) + 16) * U * (1 + Math.Abs(lse) + xl + c.Smoothing / c.Cols * absSum);
        });
        run.CheckRest();
    }

    // dlogits = d0 + g (p - target): p within RelP relative; then three roundings.
    // Bound: |g| p RelP + 3U |g (p - target)| + 2U |d0|.
    [Theory, MemberData(nameof(Rows))]
    public void CrossEntropyBackward(string backend, RowCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"ce' {c}");
        int n = c.Rows * c.Cols;
        using var run = new OpRun(k);
        var logits = run.With("logits", rng.Floats(n, -c.Range, c.Range));
        var labels = run.With("labels", rng.Labels(c.Rows, c.Cols));
        var dlosses = run.With("dlosses", rng.Floats(c.Rows, 0.1, 2));
        var dlogits = run.With("dlogits", rng.Floats(n));
        var p = new double[n];
        R.SoftmaxForward(logits.Ref, p, c.Rows, c.Cols);
        k.CrossEntropyBackward(logits, labels, dlosses, dlogits, c.Rows, c.Cols, c.Smoothing);
        R.CrossEntropyBackward(logits.Ref, labels.Ref, dlosses.Ref, dlogits.Ref, c.Rows, c.Cols, c.Smoothing);
        run.Check(dlogits, i =>
        {
            int r = i / c.Cols;
            double g = Math.Abs(dlosses.Ref[r]);
            return g * p[i] * RelP(logits.Ref, r, c.Cols) + 3 * U * Math.Abs(dlogits.Ref[i] - dlogits.Init[i])
                   + 2 * U * Math.Abs(dlogits.Init[i]) + Tiny;
        });
        run.CheckRest();
    }

    // An integer count: exact. Rows are built so that about half are correct, and some rows hold
    // their maximum twice with the label on either copy: only the first maximum counts.
    [Theory, MemberData(nameof(Rows))]
    public void CountCorrect(string backend, RowCase c)
    {
        var k = fixture.Get(backend);
        var rng = TestRandom.For($"count {c}");
        var x = rng.Floats(c.Rows * c.Cols, -c.Range, c.Range);
        var labels = rng.Labels(c.Rows, c.Cols);
        for (int r = 0; r < c.Rows; r++)
        {
            int best = 0;
            for (int j = 1; j < c.Cols; j++) if (x[r * c.Cols + j] > x[r * c.Cols + best]) best = j;
            switch (r % 4)
            {
                case 0: labels[r] = best; break;
                case 1 when c.Cols > 1: // a tie: the maximum copied to another column, label on the later copy
                    int other = (best + 1 + rng.Next(c.Cols - 1)) % c.Cols;
                    x[r * c.Cols + other] = x[r * c.Cols + best];
                    labels[r] = Math.Max(best, other);
                    if (r % 8 == 1) labels[r] = Math.Min(best, other); // and sometimes on the first
                    break;
            }
        }
        using var run = new OpRun(k);
        var logits = run.With("logits", x);
        var lab = run.With("labels", labels);
        var correct = run.With("correct", [3f]);
        k.CountCorrect(logits, lab, correct, c.Rows, c.Cols);
        R.CountCorrect(logits.Ref, lab.Ref, correct.Ref, c.Rows, c.Cols);
        run.CheckExact(correct);
        run.CheckRest();
    }
}
