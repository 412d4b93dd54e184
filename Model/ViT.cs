using ViTScratch.Engine;

namespace ViTScratch.Model;

/// <summary>
/// The Vision Transformer of vit-pytorch (and of the article "How to Train a Vision Transformer
/// (ViT) from Scratch"):
///   images → patches → LayerNorm → Linear → LayerNorm  (to_patch_embedding)
///          → prepend cls_token, add pos_embedding, dropout
///          → (patch dropout: in training, keep a random subset of the patch tokens; off by default)
///          → Transformer (depth pre-norm blocks + final LayerNorm)
///          → pool (cls token or mean of tokens) → Linear head (mlp_head) → logits.
/// Parameter names equal vit-pytorch's state_dict keys, so weights can be exchanged with PyTorch
/// through safetensors (see ViT.Checkpoint.cs).
/// </summary>
public sealed partial class ViT : Module
{
    private readonly DropoutSeeds _seeds;

    /// <summary>Builds the model and initialises it from <paramref name="seed"/> (same seed, same values).</summary>
    public ViT(ViTConfig config, Device device, int seed = 0)
    {
        Config = config.Validate();
        Device = device;
        Seed = seed;
        _seeds = new DropoutSeeds(seed);
        int dim = config.Dim;

        // Own parameters first: PyTorch lists a module's direct parameters before its children's.
        PosEmbedding = AddParameter("pos_embedding", new Parameter(device, [1, config.NumPatches + 1, dim], ParameterInit.TruncatedNormal, weightDecay: false));
        ClsToken = AddParameter("cls_token", new Parameter(device, [1, 1, dim], ParameterInit.TruncatedNormal, weightDecay: false));
        // to_patch_embedding = Sequential(Rearrange, LayerNorm, Linear, LayerNorm): items 1, 2, 3.
        PatchNorm = AddChild("to_patch_embedding.1", new LayerNorm(device, config.PatchDim));
        PatchLinear = AddChild("to_patch_embedding.2", new Linear(device, config.PatchDim, dim));
        EmbeddingNorm = AddChild("to_patch_embedding.3", new LayerNorm(device, dim));
        EmbDropout = AddChild("dropout", new Dropout(config.EmbDropout, _seeds));
        Transformer = AddChild("transformer", new Transformer(device, dim, config.Depth, config.Heads, config.DimHead, config.MlpDim, config.Dropout, _seeds));
        Head = AddChild("mlp_head", new Linear(device, dim, config.NumClasses));
        // Last, so the dropout sites above keep the seeds they had before patch dropout existed.
        PatchDropout = AddChild("patch_dropout", new PatchDropout(config.PatchDropout, config.NumPatches, _seeds));

        AssignNames();
        Initialization.Apply(this, seed);
    }

    /// <summary>The sizes this model was built with.</summary>
    public ViTConfig Config { get; }
    /// <summary>Where its parameters live.</summary>
    public Device Device { get; }

    /// <summary>The seed the weights were initialised from; dropout masks derive from it too.</summary>
    public int Seed { get; }

    /// <summary>
    /// The dropout step: each dropout mask is a function of (<see cref="Seed"/>, Step, site). The
    /// trainer sets it to the global step before each forward pass; two forward passes with the
    /// same Step draw the same masks.
    /// </summary>
    public uint Step
    {
        get => _seeds.Step;
        set => _seeds.Step = value;
    }

    /// <summary>The learned positional embedding [1, N+1, D].</summary>
    public Parameter PosEmbedding { get; }
    /// <summary>The learned cls token [1, 1, D].</summary>
    public Parameter ClsToken { get; }
    /// <summary>Layer norm of each flattened patch.</summary>
    public LayerNorm PatchNorm { get; }
    /// <summary>The patch embedding projection.</summary>
    public Linear PatchLinear { get; }
    /// <summary>Layer norm after the patch embedding.</summary>
    public LayerNorm EmbeddingNorm { get; }
    /// <summary>Dropout on the embedded tokens.</summary>
    public Dropout EmbDropout { get; }
    /// <summary>The encoder.</summary>
    public Transformer Transformer { get; }
    /// <summary>The classifier head on the pooled token.</summary>
    public Linear Head { get; }
    /// <summary>Patch dropout before the encoder (training only).</summary>
    public PatchDropout PatchDropout { get; }

    /// <summary>When on, every forward pass stores each layer's attention weights (see <see cref="AttentionMaps"/>).</summary>
    public bool CaptureAttention
    {
        get => Transformer.Layers[0].Attention.CaptureWeights;
        set { foreach (var layer in Transformer.Layers) layer.Attention.CaptureWeights = value; }
    }

    /// <summary>Per layer, the [B, H, N+1, N+1] attention weights of the last forward pass made with
    /// <see cref="CaptureAttention"/> on (before attention dropout, so use eval mode for rollout).</summary>
    public IReadOnlyList<AttentionMap> AttentionMaps =>
        Transformer.Layers.Select((l, i) => l.Attention.LastWeights
            ?? throw new InvalidOperationException($"layer {i} has no captured attention; set CaptureAttention and run Forward first")).ToList();

    /// <summary>
    /// The most likely class of each image of <paramref name="images"/> [B, C, H, W], in evaluation
    /// mode (no dropout) and without gradients; the model's mode is restored afterwards. Its
    /// intermediate tensors live in a scope of their own and are released before it returns.
    /// </summary>
    public int[] Classify(Tensor images)
    {
        bool wasTraining = Training;
        Eval();
        try
        {
            using var noGrad = Tensor.NoGrad();
            using var scope = new TensorScope();
            float[] logits = Forward(images).ToArray();
            int classes = Config.NumClasses, batch = images.Shape[0];
            var best = new int[batch];
            for (int b = 0; b < batch; b++)
                for (int c = 1; c < classes; c++)
                    if (logits[b * classes + c] > logits[b * classes + best[b]]) best[b] = c;
            return best;
        }
        finally { Train(wasTraining); }
    }

    /// <summary>images: [B, C, H, W] → logits: [B, num_classes].</summary>
    public Tensor Forward(Tensor images)
    {
        CheckImages(images);
        int batch = images.Shape[0];
        var x = Ops.Patchify(images, Config.PatchSize);     // x: [B, N, p·p·C]
        x = PatchNorm.Forward(x);                           // x: [B, N, p·p·C]
        x = PatchLinear.Forward(x);                         // x: [B, N, D]
        x = EmbeddingNorm.Forward(x);                       // x: [B, N, D]
        var cls = Ops.ExpandBatch(ClsToken.Value, batch);   // cls: [B, 1, D]
        x = Ops.ConcatTokens(cls, x);                       // x: [B, N+1, D]
        x = Ops.Add(x, PosEmbedding.Value);                 // x: [B, N+1, D] (+ [1, N+1, D])
        x = EmbDropout.Forward(x);                          // x: [B, N+1, D]
        x = PatchDropout.Forward(x);                        // x: [B, K+1, D] in training (K kept patches), else unchanged
        x = Transformer.Forward(x);                         // x: [B, K+1, D] (K = N outside training or without patch dropout)
        var pooled = Config.Pool == Pooling.Mean
            ? Ops.MeanTokens(x)                             // pooled: [B, D]
            : Ops.SelectToken(x, 0);                        // pooled: [B, D]
        return Head.Forward(pooled);                        // logits: [B, classes]
    }

    private void CheckImages(Tensor images)
    {
        var c = Config;
        if (images.Rank != 4 || images.Shape[1] != c.Channels || images.Shape[2] != c.ImageSize || images.Shape[3] != c.ImageSize)
            throw new ViTScratchException(
                $"ViT: images have shape {ShapeOf.Format(images.Shape)} but this model takes [B, {c.Channels}, {c.ImageSize}, {c.ImageSize}] (batch, channels, height, width)");
        if (images.Shape[0] == 0) throw new ViTScratchException("ViT: the batch is empty");
    }
}
