using ViTScratch.Kernels;

namespace ViTScratch.Tests.TestSupport;

/// <summary>Whole-buffer host round trips for tests that drive IKernels directly.</summary>
public static class BufferIO
{
    /// <summary>A new buffer on <paramref name="k"/> holding <paramref name="values"/>.</summary>
    public static DeviceBuffer Upload(this IKernels k, float[] values)
    {
        var b = k.Allocate(values.Length);
        k.Upload(values, b);
        return b;
    }

    /// <summary>Every value of <paramref name="b"/>, copied to the host.</summary>
    public static float[] Download(this IKernels k, DeviceBuffer b)
    {
        var values = new float[b.Length];
        k.Download(b, values);
        return values;
    }
}
