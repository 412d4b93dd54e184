using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// The CPU attention addresses rows through raw pointers, so it checks every buffer's length
/// against the layout before touching a row (CheckedLayout). Each buffer in turn is one float
/// short, the others exactly long enough: the call must throw, naming the lengths; with every
/// buffer exactly long enough it must run. A check that takes the longest buffer instead of the
/// shortest, or skips the gradients, would let the kernel read or write past an array.
/// </summary>
public class CpuAttentionBufferTests
{
    private const int BH = 2, N = 5, D = 3, Len = BH * N * D;

    public static TheoryData<string> ForwardBuffers => new("q", "k", "v", "o");
    public static TheoryData<string> BackwardBuffers => new("q", "k", "v", "o", "dO", "dq", "dk", "dv");

    [Theory, MemberData(nameof(ForwardBuffers))]
    public void ForwardRejectsAShortBuffer(string shortOne)
    {
        using var k = new CpuKernels();
        var b = Buffers(k, shortOne);
        var e = Assert.Throws<ArgumentException>(() =>
            k.AttentionForward(b["q"], b["k"], b["v"], b["o"], b["lse"], BH, N, D, 0.5f, 0f, 1));
        Assert.Contains($"needs {Len} floats", e.Message);
    }

    [Theory, MemberData(nameof(BackwardBuffers))]
    public void BackwardRejectsAShortBuffer(string shortOne)
    {
        using var k = new CpuKernels();
        var b = Buffers(k, shortOne);
        var e = Assert.Throws<ArgumentException>(() =>
            k.AttentionBackward(b["q"], b["k"], b["v"], b["o"], b["lse"], b["dO"], b["dq"], b["dk"], b["dv"], BH, N, D, 0.5f, 0f, 1));
        Assert.Contains($"needs {Len} floats", e.Message);
    }

    [Fact]
    public void ExactlyLongEnoughBuffersRun()
    {
        using var k = new CpuKernels();
        var b = Buffers(k, shortOne: null);
        k.AttentionForward(b["q"], b["k"], b["v"], b["o"], b["lse"], BH, N, D, 0.5f, 0f, 1);
        k.AttentionBackward(b["q"], b["k"], b["v"], b["o"], b["lse"], b["dO"], b["dq"], b["dk"], b["dv"], BH, N, D, 0.5f, 0f, 1);
    }

    private static Dictionary<string, DeviceBuffer> Buffers(CpuKernels k, string? shortOne)
    {
        var b = new Dictionary<string, DeviceBuffer> { ["lse"] = k.Allocate(BH * N) };
        foreach (var name in new[] { "q", "k", "v", "o", "dO", "dq", "dk", "dv" })
            b[name] = k.Allocate(name == shortOne ? Len - 1 : Len);
        return b;
    }
}
