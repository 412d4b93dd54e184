// libtorch baseline for `vit bench`: vit-pytorch's ViT ported to TorchSharp (libtorch 2.10, CPU),
// timed the same way on the same shapes (CIFAR-shaped 3x32x32 input, 4x4 patches, 10 classes).
// Not part of ViTScratch.sln or CI; see README.md.
//
//   dotnet run -c Release --project tools/torchsharp-baseline -- [--model vit-micro|vit-tiny] [--batch 128] [--threads 2] [--steps 10] [--gemm]
// --gemm times libtorch's matmul alone on the model's four Linear shapes (x Wᵀ over batch x 65 rows).

using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

string model = "vit-micro";
int batch = 128, threads = 2, steps = 10;
bool gemm = false;
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--model": model = Next(); break;
        case "--batch": batch = int.Parse(Next()); break;
        case "--threads": threads = int.Parse(Next()); break;
        case "--steps": steps = int.Parse(Next()); break;
        case "--gemm": gemm = true; break;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]}\nusage: [--model vit-micro|vit-tiny] [--batch 128] [--threads 2] [--steps 10] [--gemm]");
            return 2;
    }
}
if (batch < 1 || threads < 1 || steps < 1) { Console.Error.WriteLine("--batch, --threads and --steps must be >= 1"); return 2; }

// The presets of Model/ViTPresets.cs.
(int dim, int depth, int heads, int dimHead, int mlp) = model switch
{
    "vit-micro" => (128, 4, 4, 32, 256),
    "vit-tiny" => (192, 6, 3, 64, 384),
    _ => throw new ArgumentException($"unknown model '{model}' (vit-micro or vit-tiny)"),
};
const int Image = 32, Patch = 4, Channels = 3, Classes = 10;

GlibcxxCompat.Apply(); // before the first use of torch: see GlibcxxCompat.cs
torch.set_num_threads(threads);
torch.manual_seed(0);

if (gemm)
{
    // The Linear layers of one forward: y [rows, out] = x [rows, in] Wᵀ, W stored [out, in] as
    // nn.Linear keeps it (our engine's layout too). Rows = batch x (64 patches + cls).
    int rows = batch * 65, inner = heads * dimHead;
    Console.WriteLine($"libtorch {torch.__version__} (TorchSharp) matmul, {threads} threads, rows {rows}");
    foreach (var (name, k, n) in new[] { ("qkv", dim, 3 * inner), ("proj", inner, dim), ("mlp up", dim, mlp), ("mlp down", mlp, dim) })
    {
        using var x = torch.randn(rows, k);
        using var w = torch.randn(n, k);
        double s = Measure(() => { using var y = torch.mm(x, w.t()); });
        Console.WriteLine($"  {name,-9} {rows}x{k} · {k}x{n}ᵀ  {s * 1000,8:F2} ms  {2.0 * rows * k * n / s / 1e9,7:F1} GFLOP/s");
    }
    return 0;
}

var vit = new ViT(Image, Patch, Classes, dim, depth, heads, mlp, Channels, dimHead);
long parameters = vit.parameters().Sum(p => p.numel());
Console.WriteLine($"libtorch {torch.__version__} (TorchSharp), {model}, {parameters} parameters, batch {batch}, {threads} threads");

// One random batch, made once and reused by every step.
var images = torch.randn(batch, Channels, Image, Image);
var labels = torch.randint(0, Classes, [batch], dtype: ScalarType.Int64);
var optimizer = torch.optim.AdamW(vit.parameters(), lr: 1e-4, weight_decay: 0.05);

void TrainStep()
{
    using var scope = torch.NewDisposeScope();
    var logits = vit.forward(images);
    var loss = functional.cross_entropy(logits, labels, label_smoothing: 0.1);
    loss.backward();
    optimizer.step();
    optimizer.zero_grad();
}

void InferStep()
{
    using var scope = torch.NewDisposeScope();
    using var noGrad = torch.no_grad();
    var logits = vit.forward(images);
    _ = logits.data<float>()[0]; // touch the result
}

vit.train();
double train = Measure(TrainStep);
vit.eval();
double infer = Measure(InferStep);

Console.WriteLine($"training  {batch / train:F1} img/s");
Console.WriteLine($"inference {batch / infer:F1} img/s");
Console.WriteLine($"peak RSS {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MiB");
return 0;

// Warm up for about 3 s (at least one step), then time `steps` steps; the median step in seconds.
double Measure(Action step)
{
    var warm = Stopwatch.StartNew();
    do step(); while (warm.Elapsed.TotalSeconds < 3);
    var times = new double[steps];
    for (int s = 0; s < steps; s++)
    {
        var sw = Stopwatch.StartNew();
        step();
        times[s] = sw.Elapsed.TotalSeconds;
    }
    Array.Sort(times);
    return steps % 2 == 1 ? times[steps / 2] : (times[steps / 2 - 1] + times[steps / 2]) / 2;
}

/// <summary>einops Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)').</summary>
sealed class Rearrange : Module<Tensor, Tensor>
{
    private readonly int _p;
    public Rearrange(int patch) : base(nameof(Rearrange)) => _p = patch;

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2] / _p, w = x.shape[3] / _p;
        return x.reshape(b, c, h, _p, w, _p)         // b c h p1 w p2
                .permute(0, 2, 4, 3, 5, 1)            // b h w p1 p2 c
                .reshape(b, h * w, _p * _p * c);      // b (h w) (p1 p2 c)
    }
}

/// <summary>vit-pytorch FeedForward: LayerNorm, Linear, GELU, Dropout, Linear, Dropout.</summary>
sealed class FeedForward : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> net;

    public FeedForward(int dim, int hidden, double dropout = 0) : base(nameof(FeedForward))
    {
        net = Sequential(LayerNorm(dim), Linear(dim, hidden), GELU(), Dropout(dropout), Linear(hidden, dim), Dropout(dropout));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => net.forward(x);
}

/// <summary>vit-pytorch Attention: pre-norm, to_qkv without bias, softmax(q kᵀ · scale) v with plain matmuls, to_out.</summary>
sealed class Attention : Module<Tensor, Tensor>
{
    private readonly int _heads;
    private readonly double _scale;
    private readonly Module<Tensor, Tensor> norm;
    private readonly Module<Tensor, Tensor> attend;
    private readonly Module<Tensor, Tensor> dropout;
    private readonly Module<Tensor, Tensor> to_qkv;
    private readonly Module<Tensor, Tensor> to_out;

    public Attention(int dim, int heads, int dimHead, double dropoutP = 0) : base(nameof(Attention))
    {
        int inner = dimHead * heads;
        bool projectOut = !(heads == 1 && dimHead == dim);
        _heads = heads;
        _scale = Math.Pow(dimHead, -0.5);
        norm = LayerNorm(dim);
        attend = Softmax(dim: -1);
        dropout = Dropout(dropoutP);
        to_qkv = Linear(dim, inner * 3, hasBias: false);
        to_out = projectOut ? Sequential(Linear(inner, dim), Dropout(dropoutP)) : Identity();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = norm.forward(x);
        var qkv = to_qkv.forward(x).chunk(3, dim: -1);
        // 'b n (h d) -> b h n d'
        Tensor Heads(Tensor t) => t.view(t.shape[0], t.shape[1], _heads, -1).transpose(1, 2);
        Tensor q = Heads(qkv[0]), k = Heads(qkv[1]), v = Heads(qkv[2]);
        var dots = torch.matmul(q, k.transpose(-1, -2)) * _scale;
        var attn = dropout.forward(attend.forward(dots));
        var o = torch.matmul(attn, v);
        // 'b h n d -> b n (h d)'
        o = o.transpose(1, 2).reshape(o.shape[0], o.shape[2], -1);
        return to_out.forward(o);
    }
}

/// <summary>vit-pytorch Transformer: depth x [attn + residual, ff + residual], final LayerNorm.</summary>
sealed class Transformer : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> norm;
    private readonly ModuleList<ModuleList<Module<Tensor, Tensor>>> layers = new();

    public Transformer(int dim, int depth, int heads, int dimHead, int mlpDim, double dropout = 0) : base(nameof(Transformer))
    {
        norm = LayerNorm(dim);
        for (int i = 0; i < depth; i++)
            layers.Add(new ModuleList<Module<Tensor, Tensor>>(new Attention(dim, heads, dimHead, dropout), new FeedForward(dim, mlpDim, dropout)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var layer in layers)
        {
            x = layer[0].forward(x) + x;
            x = layer[1].forward(x) + x;
        }
        return norm.forward(x);
    }
}

/// <summary>vit-pytorch ViT with pool = 'cls'.</summary>
sealed class ViT : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> to_patch_embedding;
    private readonly Parameter pos_embedding;
    private readonly Parameter cls_token;
    private readonly Module<Tensor, Tensor> dropout;
    private readonly Transformer transformer;
    private readonly Module<Tensor, Tensor> to_latent;
    private readonly Module<Tensor, Tensor> mlp_head;

    public ViT(int imageSize, int patchSize, int numClasses, int dim, int depth, int heads, int mlpDim,
               int channels = 3, int dimHead = 64, double dropoutP = 0, double embDropout = 0) : base(nameof(ViT))
    {
        int numPatches = (imageSize / patchSize) * (imageSize / patchSize);
        int patchDim = channels * patchSize * patchSize;
        to_patch_embedding = Sequential(new Rearrange(patchSize), LayerNorm(patchDim), Linear(patchDim, dim), LayerNorm(dim));
        pos_embedding = new Parameter(torch.randn(1, numPatches + 1, dim));
        cls_token = new Parameter(torch.randn(1, 1, dim));
        dropout = Dropout(embDropout);
        transformer = new Transformer(dim, depth, heads, dimHead, mlpDim, dropoutP);
        to_latent = Identity();
        mlp_head = Linear(dim, numClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor img)
    {
        var x = to_patch_embedding.forward(img);                    // [b, n, dim]
        long b = x.shape[0], n = x.shape[1];
        var cls = cls_token.expand(b, -1, -1);                      // repeat '1 1 d -> b 1 d'
        x = torch.cat([cls, x], dim: 1);                            // [b, n+1, dim]
        x = x + pos_embedding[.., ..(int)(n + 1)];
        x = dropout.forward(x);
        x = transformer.forward(x);
        x = x[.., 0];                                               // cls pooling
        x = to_latent.forward(x);
        return mlp_head.forward(x);
    }
}
