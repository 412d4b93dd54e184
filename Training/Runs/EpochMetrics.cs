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

    /// <summary>Writes the whole table atomically (temp file, then rename).</summary>
    public static void WriteAll(string path, IEnumerable<EpochMetrics> rows)
    {
        var sb = new StringBuilder().AppendLine(Header);
        foreach (var r in rows) sb.AppendLine(r.ToCsv());
        AtomicFile.WriteAllText(path, sb.ToString());
    }
}

/// <summary>Writes files so that a crash or Ctrl+C never leaves a half-written one behind.</summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new UTF8Encoding(false), leaveOpen: true); w.Write(text); });

    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + $".tmp-{Environment.ProcessId}";
        try
        {
            using (var s = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(s);
                s.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
