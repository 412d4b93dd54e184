using System.Globalization;
using System.Text;

namespace ViTScratch.Training.Runs;

/// <summary>
/// One row of metrics.csv: what an epoch did on the training set, the validation set (NaN without
/// --val-split) and the test set (NaN unless --eval-test epoch). NaN is written as an empty field.
/// </summary>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double TrainAccuracy, double ValLoss, double ValAccuracy,
    double TestLoss, double TestAccuracy, double Lr, double ImagesPerSecond, double Seconds)
{
    /// <summary>The header line of metrics.csv.</summary>
    public const string Header = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr,images_per_sec,seconds";

    /// <summary>Whether this epoch was evaluated on a validation split.</summary>
    public bool HasVal => !double.IsNaN(ValAccuracy);
    /// <summary>Whether this epoch was evaluated on the test split.</summary>
    public bool HasTest => !double.IsNaN(TestAccuracy);

    /// <summary>This row as a metrics.csv line.</summary>
    public string ToCsv() => string.Join(',',
        Epoch.ToString(CultureInfo.InvariantCulture),
        F(TrainLoss), F(TrainAccuracy), F(ValLoss), F(ValAccuracy), F(TestLoss), F(TestAccuracy), F(Lr), F(ImagesPerSecond), F(Seconds));

    private static string F(double v) => double.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Reads a row of this layout, or of the 8-column layout that had no validation columns.</summary>
    public static EpochMetrics Parse(string line, string source)
    {
        var p = line.Split(',');
        try
        {
            double D(int i) => p[i].Length == 0 ? double.NaN : double.Parse(p[i], CultureInfo.InvariantCulture);
            int epoch = int.Parse(p[0], CultureInfo.InvariantCulture);
            return p.Length switch
            {
                10 => new EpochMetrics(epoch, D(1), D(2), D(3), D(4), D(5), D(6), D(7), D(8), D(9)),
                8 => new EpochMetrics(epoch, D(1), D(2), double.NaN, double.NaN, D(3), D(4), D(5), D(6), D(7)),
                _ => throw new FormatException($"{p.Length} columns instead of 10"),
            };
        }
        catch (FormatException e)
        {
            throw new ViTScratchException($"{source}: cannot read metrics row '{ViTScratchException.Printable(line)}' ({e.Message})");
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
