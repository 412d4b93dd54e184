using System.Reflection;
using System.Runtime.InteropServices;

namespace ViTScratch.Kernels.Gpu;

// CUDA graphs: one training step recorded once and replayed with one launch.
//
// What a graph is: stream capture (cuStreamBeginCapture_v2 ... cuStreamEndCapture) records the
//   work a stream is given instead of running it: every kernel launch becomes a node holding its
//   function, grid, group and argument values (device pointers included), ordered as the stream
//   ordered them. cuGraphInstantiateWithFlags turns the graph into an executable one, checked and
//   laid out once; cuGraphLaunch then submits all of its nodes in one call.
// Why it pays: a kernel launch costs the host about 3-5 us (argument packing in ILGPU and the
//   driver, the doorbell), so a step of N small kernels takes at least N x 4 us however fast the
//   GPU is. A vit-micro step at batch 128 is several hundred launches, and many of its kernels run
//   for less time than their launch (docs/performance.md, run 6). Replayed as a graph the host
//   pays one launch, and the GPU runs the nodes back to back.
// What breaks capture (each is an error from the driver, or a silently wrong replay):
//   - anything that is not stream work: cuMemAlloc / cuMemFree (our pool and workspaces must be
//     warm), a synchronous copy, a device or context synchronisation, a host read of a result
//     (the loss, the gradient norm, a NaN check): the capture is invalidated;
//   - work on the legacy NULL stream while a stream captures (ILGPU's default stream IS the NULL
//     stream, so the captured kernels must run on a stream of their own: GpuKernels.UseCaptureStream);
//   - a kernel argument that changes from step to step (learning rate, AdamW's bias corrections,
//     dropout seeds): a graph replays the values of the capture, so such values must live in
//     device memory that is rewritten before each replay;
//   - a device address that changes: every buffer of the step must be the same buffer at every
//     replay and must outlive the graph.
//
// Capture mode: CU_STREAM_CAPTURE_MODE_THREAD_LOCAL. In GLOBAL mode another thread's unsafe call
//   (a data-loader thread, or the test runner, touching CUDA) would invalidate our capture; in
//   RELAXED mode the driver would let this thread call cuMemAlloc or a synchronous copy during the
//   capture without complaint, which is exactly the mistake we want reported. THREAD_LOCAL forbids
//   those calls on the capturing thread only, and the step is issued by one thread.
//
// The driver is libcuda.so.1 (Linux) or nvcuda.dll (Windows), the library ILGPU itself drives; it
// is loaded on first use by Driver.Require, which turns a missing driver into one line.

/// <summary>
/// An instantiated CUDA graph of one captured stream region: <see cref="Launch"/> replays it.
/// Owns the graph and its executable form; <see cref="Dispose"/> destroys both.
/// </summary>
internal sealed class CudaGraph : IDisposable
{
    private IntPtr _graph, _exec;

    private CudaGraph(IntPtr graph, IntPtr exec, long nodes)
    {
        _graph = graph;
        _exec = exec;
        NodeCount = nodes;
    }

    /// <summary>Nodes in the graph as the driver counts them (cuGraphGetNodes): one per captured kernel launch.</summary>
    public long NodeCount { get; }

    /// <summary>How many times the graph has been launched.</summary>
    public long Launches { get; private set; }

    /// <summary>
    /// Loads the CUDA driver library (libcuda.so.1, nvcuda.dll) or throws a one-line
    /// <see cref="ViTScratchException"/> saying it is missing. Every call below does this first.
    /// </summary>
    public static void RequireDriver() => Driver.Require();

    /// <summary>
    /// Starts capturing <paramref name="stream"/> (a CUstream; never the NULL stream) in
    /// thread-local mode: from now on the stream records work instead of running it.
    /// </summary>
    public static void BeginCapture(IntPtr stream)
    {
        Driver.Require();
        if (stream == IntPtr.Zero) throw new InvalidOperationException("cuStreamBeginCapture: the legacy NULL stream cannot be captured; use a stream of its own");
        Driver.Check(Driver.cuStreamBeginCapture_v2(stream, Driver.CaptureModeThreadLocal), "cuStreamBeginCapture_v2");
    }

    /// <summary>Whether <paramref name="stream"/> is capturing now (cuStreamIsCapturing).</summary>
    public static bool IsCapturing(IntPtr stream)
    {
        Driver.Require();
        Driver.Check(Driver.cuStreamIsCapturing(stream, out int status), "cuStreamIsCapturing");
        return status == Driver.CaptureStatusActive;
    }

    /// <summary>
    /// Ends the capture of <paramref name="stream"/> and instantiates what it recorded. When the
    /// capture was invalidated (a forbidden call during it) the driver's error names the reason.
    /// </summary>
    public static CudaGraph EndCapture(IntPtr stream)
    {
        Driver.Require();
        Driver.Check(Driver.cuStreamEndCapture(stream, out IntPtr graph), "cuStreamEndCapture");
        try
        {
            nuint count = 0;
            Driver.Check(Driver.cuGraphGetNodes(graph, IntPtr.Zero, ref count), "cuGraphGetNodes");
            Driver.Check(Driver.cuGraphInstantiateWithFlags(out IntPtr exec, graph, 0), "cuGraphInstantiateWithFlags");
            return new CudaGraph(graph, exec, (long)count);
        }
        catch
        {
            Driver.cuGraphDestroy(graph);
            throw;
        }
    }

    /// <summary>
    /// Ends a capture that failed on the host side (an exception while recording) and throws away
    /// what it recorded, so the stream can run work again. Errors are ignored: this is cleanup.
    /// </summary>
    public static void AbortCapture(IntPtr stream)
    {
        if (Driver.cuStreamEndCapture(stream, out IntPtr graph) == 0 && graph != IntPtr.Zero) Driver.cuGraphDestroy(graph);
    }

    /// <summary>Queues one replay of the graph on <paramref name="stream"/>.</summary>
    public void Launch(IntPtr stream)
    {
        ObjectDisposedException.ThrowIf(_exec == IntPtr.Zero, this);
        Driver.Check(Driver.cuGraphLaunch(_exec, stream), "cuGraphLaunch");
        Launches++;
    }

    /// <summary>Destroys the executable graph and the graph (the caller has synchronised the stream).</summary>
    public void Dispose()
    {
        if (_exec != IntPtr.Zero) Driver.Check(Driver.cuGraphExecDestroy(_exec), "cuGraphExecDestroy");
        if (_graph != IntPtr.Zero) Driver.Check(Driver.cuGraphDestroy(_graph), "cuGraphDestroy");
        _exec = _graph = IntPtr.Zero;
    }

    /// <summary>
    /// The CUDA driver entry points of graph capture (cuda.h, CUDA 11.4+ for
    /// cuGraphInstantiateWithFlags). Handles are opaque pointers; every call returns a CUresult.
    /// </summary>
    internal static class Driver
    {
        private const string Library = "cuda"; // resolved to libcuda.so.1 / nvcuda.dll by Resolve

        internal const int CaptureModeThreadLocal = 1; // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        internal const int CaptureStatusActive = 1;    // CU_STREAM_CAPTURE_STATUS_ACTIVE

        private static bool _loaded;

        static Driver() => NativeLibrary.SetDllImportResolver(typeof(Driver).Assembly, Resolve);

        /// <summary>The driver library's file name on this operating system.</summary>
        internal static string FileName => OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";

        private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
            name == Library && NativeLibrary.TryLoad(FileName, assembly, path, out IntPtr handle) ? handle : IntPtr.Zero;

        /// <summary>
        /// Loads the driver library, or throws one line saying it is missing: a graph needs the
        /// NVIDIA driver, and without it a P/Invoke here would throw DllNotFoundException. (Being
        /// a member of Driver, it runs the static constructor, which installs the resolver, first.)
        /// </summary>
        internal static void Require()
        {
            if (_loaded) return;
            _loaded = NativeLibrary.TryLoad(FileName, typeof(Driver).Assembly, null, out _);
            if (!_loaded)
                throw new ViTScratchException($"--cuda-graph: the CUDA driver library {FileName} could not be loaded (no NVIDIA driver on this machine); " +
                                              "drop --cuda-graph, or run on a machine with an NVIDIA GPU and its driver");
        }

        internal static void Check(int result, string call)
        {
            if (result == 0) return;
            string name = cuGetErrorName(result, out IntPtr p) == 0 && p != IntPtr.Zero ? Marshal.PtrToStringAnsi(p) ?? "?" : "?";
            string text = cuGetErrorString(result, out IntPtr s) == 0 && s != IntPtr.Zero ? Marshal.PtrToStringAnsi(s) ?? "" : "";
            throw new InvalidOperationException($"{call} failed: CUresult {result} ({name}{(text.Length > 0 ? ": " + text : "")})");
        }

        [DllImport(Library)] internal static extern int cuStreamBeginCapture_v2(IntPtr stream, int mode);
        [DllImport(Library)] internal static extern int cuStreamEndCapture(IntPtr stream, out IntPtr graph);
        [DllImport(Library)] internal static extern int cuStreamIsCapturing(IntPtr stream, out int status);
        [DllImport(Library)] internal static extern int cuGraphInstantiateWithFlags(out IntPtr exec, IntPtr graph, ulong flags);
        [DllImport(Library)] internal static extern int cuGraphLaunch(IntPtr exec, IntPtr stream);
        [DllImport(Library)] internal static extern int cuGraphExecDestroy(IntPtr exec);
        [DllImport(Library)] internal static extern int cuGraphDestroy(IntPtr graph);
        [DllImport(Library)] internal static extern int cuGraphGetNodes(IntPtr graph, IntPtr nodes, ref nuint count);
        [DllImport(Library)] internal static extern int cuGetErrorName(int result, out IntPtr name);
        [DllImport(Library)] internal static extern int cuGetErrorString(int result, out IntPtr text);
    }
}
