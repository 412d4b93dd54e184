"""PyTorch baseline for `vit bench`: the reference article's ViT (vit-pytorch's layers, plain
matmul + softmax attention), timed the way `vit bench` times ours, on CPU or CUDA.

    python3 tools/device/torch_vit.py --device cpu|cuda --model vit-micro|vit-tiny|vit-small
                                      [--batch 128] [--threads 2] [--steps 10]

Same shapes as `vit bench`: one random CIFAR-shaped batch (3x32x32, 4x4 patches, 10 classes),
reused by every step; a training step is forward, cross-entropy with label smoothing 0.1,
backward, AdamW, and reads the loss back (ours does too, so both synchronise once a step);
inference is eval mode under no_grad and copies the logits to the host. At least 3 steps and
3 s of warm-up, then the median of --steps timed steps. FP32 throughout: TF32 is off, as in
our kernels and in the cuBLAS comparison of tools/device/torch_reference.py.
The same model in TorchSharp (libtorch on this project's CPU host): tools/torchsharp-baseline/.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # Model/ViTPresets.cs: dim, depth, heads, dim_head, mlp_dim
    "vit-micro": (128, 4, 4, 32, 256),
    "vit-tiny": (192, 6, 3, 64, 384),
    "vit-small": (384, 7, 12, 32, 384),
}


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x):                                              # x: [b, n, dim]
        x = self.norm(x)
        b, n, _ = x.shape
        q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2)       # each: [b, h, n, d]
                   for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)  # [b, h, n, n]
        o = (attn @ v).transpose(1, 2).reshape(b, n, -1)              # [b, n, h*d]
        return self.to_out(o)


class ViT(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, image=32, patch=4, channels=3, classes=10):
        super().__init__()
        self.patch = patch
        patches, patch_dim = (image // patch) ** 2, channels * patch * patch
        self.embed = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim), nn.LayerNorm(dim))
        self.pos = nn.Parameter(torch.randn(1, patches + 1, dim))
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head), FeedForward(dim, mlp_dim)]) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, img):                                           # img: [b, c, H, W]
        b, c, hh, ww = img.shape
        p = self.patch
        x = (img.reshape(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 3, 5, 1)
             .reshape(b, (hh // p) * (ww // p), p * p * c))             # [b, n, p*p*c]
        x = self.embed(x)                                             # [b, n, dim]
        x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1) + self.pos  # [b, n+1, dim]
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.head(self.norm(x)[:, 0])                          # [b, classes]


def measure(step, steps):
    start = time.perf_counter()
    i = 0
    while i < 3 or time.perf_counter() - start < 3:
        step()
        i += 1
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", default="vit-micro", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = ViT(*PRESETS[a.model]).to(dev)
    images = torch.randn(a.batch, 3, 32, 32, device=dev)
    labels = torch.randint(0, 10, (a.batch,), device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def train_step():
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    def infer_step():
        with torch.no_grad():
            model(images).cpu()

    model.train()
    train = measure(train_step, a.steps)
    model.eval()
    infer = measure(infer_step, a.steps)
    threads = f", {torch.get_num_threads()} threads" if a.device == "cpu" else ""
    print(f"torch {torch.__version__} {a.device}{threads}, {a.model}, "
          f"{sum(p.numel() for p in model.parameters())} parameters, batch {a.batch}")
    print(f"training  {a.batch / train:8.1f} img/s")
    print(f"inference {a.batch / infer:8.1f} img/s")


if __name__ == "__main__":
    main()
