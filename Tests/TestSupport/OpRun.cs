using ViTScratch.Kernels;

namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// Runs one kernel call on a backend and the same call on the float64 reference, from identical
/// starting contents, then compares every buffer involved.
///
/// Each buffer starts as a float array that both sides receive: inputs hold random data, `=`
/// outputs are poisoned with NaN (an element the kernel forgets to write stays NaN and fails), and
/// `+=` gradient buffers hold random values (a kernel that overwrites instead of accumulating loses
/// them and fails). On the device each buffer is a Slice in the middle of a larger allocation whose
/// guard cells on both sides hold a sentinel, so a write past either end is caught, and kernels are
/// exercised on views with a non-zero offset as the engine will use them.
///
/// After the call every buffer is checked: those given a tolerance against the reference result,
/// all others (the inputs) bit-exactly against their starting contents, so a kernel that scribbles
/// on an input fails too.
/// </summary>
public sealed class OpRun : IDisposable
{
    private const float Guard = -7777.25f;
    private readonly IKernels _k;
    private readonly List<Buf> _bufs = [];
    private readonly HashSet<Buf> _checked = [];

    public OpRun(IKernels k) => _k = k;

    public sealed class Buf
    {
        internal Buf(string name, float[] init, DeviceBuffer parent, DeviceBuffer dev, int pad)
        {
            Name = name; Init = init; Parent = parent; Dev = dev; Pad = pad;
            Ref = init.ToDouble();
        }

        public string Name { get; }
        /// <summary>The starting contents, as uploaded.</summary>
        public float[] Init { get; }
        /// <summary>The reference's copy: hand this to ReferenceKernels, which updates it in place.</summary>
        public double[] Ref { get; }
        /// <summary>The backend's buffer: hand this to the IKernels call.</summary>
        public DeviceBuffer Dev { get; }
        internal DeviceBuffer Parent { get; }
        internal int Pad { get; }
        public int Length => Init.Length;
        public static implicit operator DeviceBuffer(Buf b) => b.Dev;
    }

    /// <summary>A buffer with the given contents (an input, or a `+=` buffer's prior contents).</summary>
    public Buf With(string name, float[] data)
    {
        int pad = 1 + _bufs.Count % 5; // offsets vary between buffers so none is accidentally aligned
        var parent = _k.Allocate(data.Length + 2 * pad);
        var guards = new float[data.Length + 2 * pad];
        Array.Fill(guards, Guard);
        data.CopyTo(guards, pad);
        _k.Upload(guards, parent);
        var b = new Buf(name, (float[])data.Clone(), parent, _k.Slice(parent, pad, data.Length), pad);
        _bufs.Add(b);
        return b;
    }

    /// <summary>An `=` output, poisoned with NaN.</summary>
    public Buf Poisoned(string name, int length)
    {
        var a = new float[length];
        Array.Fill(a, float.NaN);
        return With(name, a);
    }

    /// <summary>Downloads the buffer's current contents (without its guards).</summary>
    public float[] Read(Buf b)
    {
        _k.Synchronize();
        var all = new float[b.Length + 2 * b.Pad];
        _k.Download(b.Parent, all);
        return all.AsSpan(b.Pad, b.Length).ToArray();
    }

    /// <summary>Compares the buffer with its reference copy within bound(i).</summary>
    public void Check(Buf b, Func<int, double> bound)
    {
        _checked.Add(b);
        Tol.Check($"{_k.Name}: {b.Name}", b.Ref, Read(b), bound);
    }

    /// <summary>Compares the buffer bit-exactly with its reference copy.</summary>
    public void CheckExact(Buf b) => Check(b, _ => 0);

    /// <summary>Checks guard cells of every buffer and that every unchecked buffer is unchanged.</summary>
    public void CheckRest()
    {
        _k.Synchronize();
        foreach (var b in _bufs)
        {
            var all = new float[b.Length + 2 * b.Pad];
            _k.Download(b.Parent, all);
            for (int i = 0; i < b.Pad; i++)
            {
                if (all[i] != Guard || all[b.Pad + b.Length + i] != Guard)
                    throw new Xunit.Sdk.XunitException($"{_k.Name}: a kernel wrote outside buffer '{b.Name}' (length {b.Length})");
            }
            if (!_checked.Contains(b))
                Tol.Check($"{_k.Name}: input '{b.Name}' must not change", b.Init.ToDouble(), all.AsSpan(b.Pad, b.Length).ToArray(), _ => 0);
        }
    }

    public void Dispose()
    {
        foreach (var b in _bufs) { b.Dev.Dispose(); b.Parent.Dispose(); }
    }
}
