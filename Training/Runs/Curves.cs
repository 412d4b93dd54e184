using ScottPlot;

namespace ViTScratch.Training.Runs;

/// <summary>curves.png: loss (left) and accuracy (right) per epoch, train and test.</summary>
public static class Curves
{
    public static void Save(string path, IReadOnlyList<EpochMetrics> rows, string title)
    {
        if (rows.Count == 0) return;
        double[] epochs = rows.Select(r => (double)r.Epoch).ToArray();
        var multi = new Multiplot();
        multi.AddPlots(2);
        multi.Layout = new ScottPlot.MultiplotLayouts.Columns();

        var loss = multi.GetPlot(0);
        Line(loss, epochs, rows.Select(r => r.TrainLoss), "train");
        Line(loss, epochs, rows.Select(r => r.TestLoss), "test");
        loss.Title($"{title}: loss");
        loss.XLabel("epoch");
        EpochTicks(loss);
        loss.ShowLegend(Alignment.UpperRight);

        var acc = multi.GetPlot(1);
        Line(acc, epochs, rows.Select(r => r.TrainAccuracy * 100), "train");
        Line(acc, epochs, rows.Select(r => r.TestAccuracy * 100), "test");
        acc.Title($"accuracy (best test {rows.Max(r => r.TestAccuracy) * 100:F2}%)");
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

    private static void Line(Plot plot, double[] xs, IEnumerable<double> ys, string label)
    {
        var s = plot.Add.Scatter(xs, ys.ToArray());
        s.LegendText = label;
        s.LineWidth = 2;
    }
}
