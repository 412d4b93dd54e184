namespace ViTScratch.Kernels.Cpu;

/// <summary>
/// The SIMD CPU backend: the default when no NVIDIA GPU is present, and the fastest way to train
/// a small ViT on a laptop. Each kernel family lives in its own partial file next to this one
/// (CpuKernels.Elementwise.cs, CpuKernels.Softmax.cs, ...). Buffers are managed float arrays.
/// Not thread-safe: one engine drives one backend, and the kernels parallelise internally.
/// </summary>
internal sealed partial class CpuKernels : IKernels
{
    public string Name => "cpu";
    // The SIMD CPU path is float32 only: a requested Tf32 or Bf16 is accepted and ignored.
    public MathPrecision Precision { get => MathPrecision.Fp32; set { } }

    /// <summary>
    /// Pieces per worker that the big parallel kernels (matmul, attention) cut their work into.
    /// One piece per core is the least overhead, but the whole call then waits for the slowest
    /// core; on the shared 2-vCPU development host one core often ran 1.3-1.5x slower than the
    /// other for seconds at a time. With several pieces per core the faster core takes more of
    /// them (docs/log/2026-performance-log.md, "Several pieces per core"). 1 = the static split;
    /// benchmarks compare.
    /// </summary>
    internal int ChunksPerWorker { get; init; } = 4;

    public DeviceBuffer Allocate(int length) => new CpuBuffer(new float[length], 0, length);

    public DeviceBuffer Slice(DeviceBuffer buffer, int offset, int length)
    {
        var b = CpuBuffer.Of(buffer);
        if ((uint)offset > (uint)b.Length || length > b.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) is outside a buffer of {b.Length}");
        return new CpuBuffer(b.Array, b.Offset + offset, length);
    }

    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination) => source.CopyTo(S(destination));

    public void Download(DeviceBuffer source, Span<float> destination) => S(source).CopyTo(destination);

    public void Synchronize() { }

    public void Dispose() { }

    private static Span<float> S(DeviceBuffer b) => CpuBuffer.Of(b).Span;

    // Layernorm backward's per-worker partial rows (dgamma, dbeta and two row buffers per worker).
    // Grown, never shrunk, so steady-state training allocates nothing here.
    private float[] _layerNormPartials = [];

    private float[] LayerNormPartials(int length)
    {
        if (_layerNormPartials.Length < length) _layerNormPartials = new float[length];
        return _layerNormPartials;
    }
}
