using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using Xunit;

namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// The backend test matrix (DiffSharp style): every kernel test is a [Theory] whose rows are
/// (backend name, case) for every backend that <see cref="BackendFactory.IsAvailable"/> reports on
/// this machine. A backend that is not built yet, or a GPU that is absent, simply drops out of the
/// rows; a new backend joins every test the moment it becomes available.
///
/// The environment variable VIT_TEST_BACKENDS (comma-separated, e.g. "cpu") narrows the matrix,
/// e.g. to skip the slow ILGPU simulator while iterating on the CPU backend.
///
/// "cpu-256" is the CPU backend held at its Vector256 width (<see cref="SimdPath"/>), a test-only
/// row present where "cpu" runs Vector512 (an AVX-512 host): every CPU kernel then runs at both
/// widths in one process. On other hosts "cpu" is already the Vector256 path.
/// </summary>
public static class BackendMatrix
{
    /// <summary>Every backend the matrix knows, in the order its rows appear.</summary>
    public static readonly string[] All = ["cpu", "ilgpu-cpu", "cuda"];

    /// <summary>The CPU backend forced to its Vector256 kernels: a row of the kernel matrix only.</summary>
    public const string Cpu256 = "cpu-256";

    public static IReadOnlyList<string> Available { get; } = All
        .Where(BackendFactory.IsAvailable)
        .Where(n => Environment.GetEnvironmentVariable("VIT_TEST_BACKENDS") is not { Length: > 0 } only
                    || only.Split(',', StringSplitOptions.TrimEntries).Contains(n))
        .ToArray();

    /// <summary>The rows' backends: <see cref="Available"/>, with "cpu-256" after "cpu" on an AVX-512 host.</summary>
    public static IReadOnlyList<string> RowBackends { get; } = Available
        .SelectMany(n => n == "cpu" && SimdPaths.Detected == SimdPath.Vector512 ? new[] { n, Cpu256 } : new[] { n })
        .ToArray();

    /// <summary>
    /// ILGPU's CPU accelerator simulates every GPU thread (about 300x slower than the SIMD backend),
    /// so it gets tiny ragged shapes; the real backends get shapes that straddle SIMD widths and tiles.
    /// </summary>
    public static bool IsSlow(string backend) => backend == "ilgpu-cpu";

    /// <summary>A new backend for a matrix name.</summary>
    public static IKernels Create(string name) =>
        name == Cpu256 ? new CpuKernels { SimdPath = SimdPath.Vector256 } : BackendFactory.Create(name);

    /// <summary>Rows (backend, case) with the cases chosen per backend by <paramref name="casesFor"/>(slow).</summary>
    public static TheoryData<string, TCase> Rows<TCase>(Func<bool, IEnumerable<TCase>> casesFor)
    {
        var data = new TheoryData<string, TCase>();
        foreach (string name in RowBackends)
            foreach (var c in casesFor(IsSlow(name)))
                data.Add(name, c);
        return data;
    }
}

/// <summary>
/// One backend instance per name per test class (xunit class fixture), created on first use and
/// disposed when the class finishes, so device contexts and compiled kernels are reused across rows.
/// </summary>
public sealed class BackendFixture : IDisposable
{
    private readonly Dictionary<string, IKernels> _backends = new();
    private readonly object _lock = new();

    public IKernels Get(string name)
    {
        lock (_lock)
        {
            if (!_backends.TryGetValue(name, out var k))
                _backends[name] = k = BackendMatrix.Create(name);
            return k;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var k in _backends.Values) k.Dispose();
            _backends.Clear();
        }
    }
}

/// <summary>
/// All backend-matrix classes run one after another (not in parallel with each other): the CPU
/// kernels already use every core, and GPU backends should not fight over one device.
/// </summary>
[CollectionDefinition(Name)]
public sealed class BackendCollection
{
    public const string Name = "Backend matrix";
}
