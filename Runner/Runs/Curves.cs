using ScottPlot;

namespace ViTScratch.Training.Runs;

/// <summary>
/// curves.png: loss (left) and accuracy (right) per epoch, for the training set, the validation
/// set (with --val-split) and the test set (only with --eval-test epoch). The accuracy title names
/// the best validation epoch: the one best.safetensors holds.
/// </summary>
public static class Curves
{
    public static void Save(string path, IReadOnlyList<EpochMetrics> rows, string title)
    {
        if (rows.Count == 0) return;
        bool val = rows.Any(r => r.HasVal), test = rows.Any(r => r.HasTest);
        var multi = new Multiplot();
        multi.AddPlots(2);
        multi.Layout = new ScottPlot.MultiplotLayouts.Columns();

        var loss = multi.GetPlot(0);
        Line(loss, rows, r => r.TrainLoss, "train");
        if (val) Line(loss, rows.Where(r => r.HasVal), r => r.ValLoss, "val");
        if (test) Line(loss, rows.Where(r => r.HasTest), r => r.TestLoss, "test");
        loss.Title($"{title}: loss");
        loss.XLabel("epoch");
        EpochTicks(loss);
        loss.ShowLegend(Alignment.UpperRight);

        var acc = multi.GetPlot(1);
        Line(acc, rows, r => r.TrainAccuracy * 100, "train");
        if (val) Line(acc, rows.Where(r => r.HasVal), r => r.ValAccuracy * 100, "val");
        if (test) Line(acc, rows.Where(r => r.HasTest), r => r.TestAccuracy * 100, "test");
        if (val)
        {
            var best = rows.Where(r => r.HasVal).MaxBy(r => r.ValAccuracy)!;
            acc.Title($"accuracy (best val {best.ValAccuracy * 100:F2}% at epoch {best.Epoch})");
        }
        else acc.Title("accuracy");
        acc.XLabel("epoch");
        EpochTicks(acc);
        acc.YLabel("%");
        acc.ShowLegend(Alignment.LowerRight);

        using var image = multi.Render(1100, 420);
        byte[] png = image.GetImageBytes(ImageFormat.Png, 100);
        AtomicFile.Write(path, s => s.Write(png));
    }

    // Epochs are whole numbers: no 1.5, 2.5 ticks on a short run.
    private static void EpochTicks(Plot plot) =>
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };

    // Only the epochs that have the value: with --val-every N the val line joins the validated
    // epochs instead of breaking at the others.
    private static void Line(Plot plot, IEnumerable<EpochMetrics> rows, Func<EpochMetrics, double> y, string label)
    {
        var points = rows.ToList();
        var s = plot.Add.Scatter(points.Select(r => (double)r.Epoch).ToArray(), points.Select(y).ToArray());
        s.LegendText = label;
        s.LineWidth = 2;
    }
}
