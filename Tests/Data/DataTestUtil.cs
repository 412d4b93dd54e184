using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using ViTScratch.Training.Data;

namespace ViTScratch.Tests.Data;

/// <summary>A fresh temporary directory, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "vit-data-test-" + Guid.NewGuid().ToString("N"));
    public TempDir() => Directory.CreateDirectory(Path);
    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);
    public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
}

internal static class DataTestUtil
{
    /// <summary>Random uint8 dataset of ragged shape; labels cycle so each class appears.</summary>
    public static ImageDataset RandomDataset(int count, int c, int h, int w, int classes, int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[count * c * h * w];
        rng.NextBytes(pixels);
        var labels = new byte[count];
        for (int i = 0; i < count; i++) labels[i] = (byte)rng.Next(classes);
        var mean = Enumerable.Range(0, c).Select(i => 0.3f + 0.1f * i).ToArray();
        var std = Enumerable.Range(0, c).Select(i => 0.2f + 0.05f * i).ToArray();
        return new ImageDataset("synthetic", count, c, h, w, pixels, labels,
            Enumerable.Range(0, classes).Select(i => "class" + i).ToArray(), mean, std);
    }

    public static byte[] IdxImages(int count, int rows, int cols, byte[] pixels)
    {
        var ms = new MemoryStream();
        Span<byte> word = stackalloc byte[4];
        foreach (uint v in new uint[] { IdxFormat.ImagesMagic, (uint)count, (uint)rows, (uint)cols })
        {
            BinaryPrimitives.WriteUInt32BigEndian(word, v);
            ms.Write(word);
        }
        ms.Write(pixels);
        return ms.ToArray();
    }

    public static byte[] IdxLabels(byte[] labels)
    {
        var ms = new MemoryStream();
        Span<byte> word = stackalloc byte[4];
        foreach (uint v in new uint[] { IdxFormat.LabelsMagic, (uint)labels.Length })
        {
            BinaryPrimitives.WriteUInt32BigEndian(word, v);
            ms.Write(word);
        }
        ms.Write(labels);
        return ms.ToArray();
    }

    public static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    /// <summary>CIFAR records: labelBytes label bytes (label values given per record), then 3072 random pixels.</summary>
    public static byte[] CifarRecords(Random rng, byte[][] labelsPerRecord, out byte[] pixels)
    {
        int n = labelsPerRecord.Length, lb = labelsPerRecord[0].Length;
        var data = new byte[n * (lb + 3072)];
        pixels = new byte[n * 3072];
        rng.NextBytes(pixels);
        for (int r = 0; r < n; r++)
        {
            labelsPerRecord[r].CopyTo(data, r * (lb + 3072));
            Array.Copy(pixels, r * 3072, data, r * (lb + 3072) + lb, 3072);
        }
        return data;
    }

    /// <summary>Builds a .tar.gz in memory from (entry name, content) pairs, with a directory entry per folder.</summary>
    public static byte[] TarGz(IEnumerable<(string Name, byte[] Content)> files)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gz, TarEntryFormat.Ustar, leaveOpen: true))
        {
            var dirs = new HashSet<string>();
            foreach (var (name, content) in files)
            {
                string dir = name.Contains('/') ? name[..(name.LastIndexOf('/') + 1)] : "";
                if (dir.Length > 0 && dirs.Add(dir)) tar.WriteEntry(new UstarTarEntry(TarEntryType.Directory, dir));
                tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content) });
            }
        }
        return ms.ToArray();
    }

    public static string Md5(byte[] data) => Convert.ToHexStringLower(MD5.HashData(data));

    /// <summary>A port on 127.0.0.1 that nothing listens on (bound then released).</summary>
    public static int ClosedLoopbackPort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public static DatasetOptions Options(string cacheDir) => new()
    {
        CacheDir = cacheDir, SystemDirs = [], Progress = null, GetEnvironment = _ => null,
    };
}

/// <summary>
/// A minimal HTTP/1.1 server on 127.0.0.1 (TcpListener, hand-written responses, Connection: close).
/// Routes map a path to a status and body; <see cref="Route.DeclaredLength"/> lets a test announce
/// more bytes than it sends, to simulate a connection dropped mid-transfer. Every connection is
/// served on its own task with a timeout; Dispose stops the listener.
/// </summary>
internal sealed class LoopbackHttpServer : IDisposable
{
    public sealed record Route(int Status, byte[] Body, long? DeclaredLength = null);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Dictionary<string, Route> _routes = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private int _requests;

    public LoopbackHttpServer()
    {
        _listener.Start();
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public int Requests => Volatile.Read(ref _requests);
    public string Url(string path) => $"http://127.0.0.1:{Port}/{path.TrimStart('/')}";

    public void Serve(string path, Route route) { lock (_routes) _routes["/" + path.TrimStart('/')] = route; }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using var _ = client;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        try
        {
            var stream = client.GetStream();
            var header = new StringBuilder();
            var buf = new byte[1];
            while (!header.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal) && header.Length < 16384)
            {
                if (await stream.ReadAsync(buf, timeout.Token) == 0) return;
                header.Append((char)buf[0]);
            }
            Interlocked.Increment(ref _requests);
            string path = header.ToString().Split(' ')[1];
            Route? route;
            lock (_routes) _routes.TryGetValue(path, out route);
            route ??= new Route(404, Encoding.ASCII.GetBytes("not found"));
            string reason = route.Status == 200 ? "OK" : route.Status == 404 ? "Not Found" : "Error";
            string head = $"HTTP/1.1 {route.Status} {reason}\r\nContent-Type: application/octet-stream\r\n" +
                          $"Content-Length: {route.DeclaredLength ?? route.Body.Length}\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token);
            await stream.WriteAsync(route.Body, timeout.Token);
            await stream.FlushAsync(timeout.Token);
        }
        catch (Exception) { /* client went away or timeout: nothing to do */ }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try { _acceptLoop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
