using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// The buffers of one attention call on the packed layout the model uses: q, k, v read straight
/// out of the to_qkv output [B, N, 3 H d], o written as [B, N, H d], random inputs. Forward and
/// Backward run the CPU kernels of whichever CpuKernels they are given, so A/B harnesses can time
/// two configurations on the same buffers.
/// </summary>
internal sealed class PackedAttentionBuffers
{
    private readonly DeviceBuffer _q, _k, _v, _o, _lse, _dO, _dq, _dk, _dv;
    private readonly AttentionLayout _layout;
    private readonly int _bh, _n, _d;
    private readonly float _scale;

    public PackedAttentionBuffers(CpuKernels kern, int batch, int heads, int n, int d, Random rnd)
    {
        (_bh, _n, _d) = (batch * heads, n, d);
        int inner = heads * d;
        _layout = AttentionLayout.Packed(heads, n, d);
        int qkvLen = batch * n * 3 * inner, outLen = batch * n * inner, sliceLen = qkvLen - 2 * inner;
        var qkv = Interleaved.Filled(kern, qkvLen, rnd);
        var dqkv = kern.Allocate(qkvLen);
        (_q, _k, _v) = (kern.Slice(qkv, 0, sliceLen), kern.Slice(qkv, inner, sliceLen), kern.Slice(qkv, 2 * inner, sliceLen));
        (_dq, _dk, _dv) = (kern.Slice(dqkv, 0, sliceLen), kern.Slice(dqkv, inner, sliceLen), kern.Slice(dqkv, 2 * inner, sliceLen));
        _o = kern.Allocate(outLen);
        _lse = kern.Allocate(_bh * n);
        _dO = Interleaved.Filled(kern, outLen, rnd);
        _scale = 1f / MathF.Sqrt(d);
    }

    /// <summary>The nominal 4 BH N² d flops of a forward call; a backward call counts twice that.</summary>
    public double ForwardFlops => 4.0 * _bh * _n * _n * _d;

    public void Forward(CpuKernels kern) =>
        kern.AttentionForward(_q, _k, _v, _o, _lse, _bh, _n, _d, _scale, 0f, 0, _layout);

    public void Backward(CpuKernels kern) =>
        kern.AttentionBackward(_q, _k, _v, _o, _lse, _dO, _dq, _dk, _dv, _bh, _n, _d, _scale, 0f, 0, _layout);
}
