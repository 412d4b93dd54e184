using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

/// <summary>
/// A buffer in accelerator memory: a window of an ILGPU <see cref="MemoryBuffer1D{T, TStride}"/>.
/// The buffer that allocated the memory owns it; slices only carry a sub-view and never free it.
/// </summary>
internal sealed class GpuBuffer : DeviceBuffer
{
    private MemoryBuffer1D<float, Stride1D.Dense>? _owned;

    /// <summary>A buffer over <paramref name="view"/>; <paramref name="owned"/> is the allocation to free on Dispose, null for slices.</summary>
    internal GpuBuffer(ArrayView<float> view, Accelerator accelerator, MemoryBuffer1D<float, Stride1D.Dense>? owned = null)
        : base((int)view.Length)
    {
        _owned = owned;
        View = view;
        Accelerator = accelerator;
    }

    /// <summary>The accelerator whose memory this is.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>The elements of this buffer, as kernels see them.</summary>
    public ArrayView<float> View { get; }

    public override void Dispose()
    {
        _owned?.Dispose();
        _owned = null;
        base.Dispose();
    }

    internal static GpuBuffer Of(DeviceBuffer buffer, Accelerator accelerator)
    {
        if (buffer is GpuBuffer g && ReferenceEquals(g.Accelerator, accelerator)) return g;
        throw new ArgumentException($"the ILGPU backend was handed a {buffer.GetType().Name} from another device; tensors of different devices cannot be mixed");
    }
}
