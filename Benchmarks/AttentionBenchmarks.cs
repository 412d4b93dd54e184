using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;

namespace ViTScratch.Benchmarks;

/// <summary>
/// Fused attention vs the unfused sequence on the same CPU backend (batched MatMul + SoftmaxForward
/// + MatMul forward; for backward the unfused path keeps P from its forward and runs four batched
/// matmuls and SoftmaxBackward). Batch 128 of 65 tokens, ViT-Tiny heads (H=3, d=64) and a
/// narrower-head config (H=4, d=32); no dropout on either side. GFLOP/s counts the nominal
/// 4 BH N^2 d (forward) and 8 BH N^2 d (backward) flops for both, so the ratio is the speed-up.
/// Each category (Forward, Backward) has the unfused method as its baseline.
/// Run: dotnet run -c Release --project Benchmarks -- --filter '*AttentionBenchmarks*'
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class AttentionBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new GflopsColumn(), new OfFmaPeakColumn());
    }

    public sealed record Case(int Batch, int Heads, int Tokens, int HeadDim) : IHasFlops
    {
        public int BH => Batch * Heads;
        public double FlopsFor(string method) =>
            (method.Contains("Backward") ? 8.0 : 4.0) * BH * Tokens * Tokens * HeadDim;
        public override string ToString() => $"B={Batch} H={Heads} N={Tokens} d={HeadDim}";
    }

    public static IEnumerable<Case> Cases => [new(128, 3, 65, 64), new(128, 4, 65, 32)];

    [ParamsSource(nameof(Cases))]
    public Case Shape { get; set; } = null!;

    private readonly CpuKernels _k = new();
    private DeviceBuffer _q = null!, _kk = null!, _v = null!, _o = null!, _lse = null!, _dO = null!;
    private DeviceBuffer _dq = null!, _dk = null!, _dv = null!, _s = null!, _p = null!, _dp = null!, _ds = null!;
    private float _scale;

    [GlobalSetup]
    public void Setup()
    {
        var c = Shape;
        int len = c.BH * c.Tokens * c.HeadDim, scores = c.BH * c.Tokens * c.Tokens;
        var rnd = new Random(3);
        _q = Filled(len, rnd); _kk = Filled(len, rnd); _v = Filled(len, rnd); _dO = Filled(len, rnd);
        _o = _k.Allocate(len); _lse = _k.Allocate(c.BH * c.Tokens);
        _dq = _k.Allocate(len); _dk = _k.Allocate(len); _dv = _k.Allocate(len);
        _s = _k.Allocate(scores); _p = _k.Allocate(scores); _dp = _k.Allocate(scores); _ds = _k.Allocate(scores);
        _scale = 1f / MathF.Sqrt(c.HeadDim);
        FusedForward(); FusedBackward(); UnfusedForward(); UnfusedBackward(); // warm the per-thread scratch
    }

    [Benchmark, BenchmarkCategory("Forward")]
    public void FusedForward() =>
        _k.AttentionForward(_q, _kk, _v, _o, _lse, Shape.BH, Shape.Tokens, Shape.HeadDim, _scale, 0f, 0);

    [Benchmark(Baseline = true), BenchmarkCategory("Forward")]
    public void UnfusedForward()
    {
        var c = Shape;
        _k.MatMul(_q, _kk, _s, MatMulShape.Batched(c.BH, c.Tokens, c.Tokens, c.HeadDim, transB: true), _scale, false); // S = scale Q Kᵀ
        _k.SoftmaxForward(_s, _p, c.BH * c.Tokens, c.Tokens);                                                        // P = softmax(S)
        _k.MatMul(_p, _v, _o, MatMulShape.Batched(c.BH, c.Tokens, c.HeadDim, c.Tokens), 1f, false);                  // O = P V
    }

    [Benchmark, BenchmarkCategory("Backward")]
    public void FusedBackward() =>
        _k.AttentionBackward(_q, _kk, _v, _o, _lse, _dO, _dq, _dk, _dv, Shape.BH, Shape.Tokens, Shape.HeadDim, _scale, 0f, 0);

    [Benchmark(Baseline = true), BenchmarkCategory("Backward")]
    public void UnfusedBackward()
    {
        var c = Shape;
        int n = c.Tokens, d = c.HeadDim;
        _k.MatMul(_dO, _v, _dp, MatMulShape.Batched(c.BH, n, n, d, transB: true), 1f, false);       // dP = dO Vᵀ
        _k.MatMul(_p, _dO, _dv, MatMulShape.Batched(c.BH, n, d, n, transA: true), 1f, true);        // dV += Pᵀ dO
        _k.Fill(_ds, 0f, c.BH * n * n);
        _k.SoftmaxBackward(_p, _dp, _ds, c.BH * n, n);                                              // dS = P (dP - D)
        _k.MatMul(_ds, _kk, _dq, MatMulShape.Batched(c.BH, n, d, n), _scale, true);                 // dQ += s dS K
        _k.MatMul(_ds, _q, _dk, MatMulShape.Batched(c.BH, n, d, n, transA: true), _scale, true);    // dK += s dSᵀ Q
    }

    private DeviceBuffer Filled(int n, Random rnd)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        var buf = _k.Allocate(n);
        _k.Upload(x, buf);
        return buf;
    }
}
