using System.Globalization;
using System.Text;

namespace ViTScratch.Training.Runs;

/// <summary>One row of metrics.csv: what an epoch did, on the training and the test set.</summary>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy,
    double Lr, double ImagesPerSecond, double Seconds)
{
    public const string Header = "epoch,train_loss,train_acc,test_loss,test_acc,lr,images_per_sec,seconds";

    public string ToCsv() => string.Join(',',
        Epoch.ToString(CultureInfo.InvariantCulture),
        F(TrainLoss), F(TrainAccuracy), F(TestLoss), F(TestAccuracy), F(Lr), F(ImagesPerSecond), F(Seconds));

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    public static EpochMetrics Parse(string line, string source)
    {
        var p = line.Split(',');
        try
        {
            if (p.Length != 8) throw new FormatException($"{p.Length} columns instead of 8");
            double D(int i) => double.Parse(p[i], CultureInfo.InvariantCulture);
            return new EpochMetrics(int.Parse(p[0], CultureInfo.InvariantCulture), D(1), D(2), D(3), D(4), D(5), D(6), D(7));
        }
        catch (FormatException e)
        {
            throw new ViTScratchException($"{source}: cannot read metrics row '{line}' ({e.Message})");
        }
    }

    /// <summary>The whole table as CSV text, header first (metrics.csv, and inside each checkpoint).</summary>
    public static string ToCsv(IEnumerable<EpochMetrics> rows)
    {
        var sb = new StringBuilder().AppendLine(Header);
        foreach (var r in rows) sb.AppendLine(r.ToCsv());
        return sb.ToString();
    }

    /// <summary>Reads a table written by <see cref="ToCsv(IEnumerable{EpochMetrics})"/>; <paramref name="source"/> names it in errors.</summary>
    public static List<EpochMetrics> ParseAll(string csv, string source) =>
        csv.Split('\n').Skip(1).Select(l => l.TrimEnd('\r')).Where(l => !string.IsNullOrWhiteSpace(l)).Select(l => Parse(l, source)).ToList();

    /// <summary>Writes the whole table atomically (temp file, then rename).</summary>
    public static void WriteAll(string path, IEnumerable<EpochMetrics> rows) => AtomicFile.WriteAllText(path, ToCsv(rows));
}
