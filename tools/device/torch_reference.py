"""Cross-check for `vit kernels bench` on a CUDA machine: the same matmul shapes through
PyTorch (cuBLAS SGEMM / strided-batched SGEMM, TF32 off) and the device-to-device copy rate,
timed with CUDA events (median of 25 samples after warm-up). Run by tools/device/gpu-check.sh."""
import statistics
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, cuBLAS via torch, TF32 off")


def median_ms(fn, samples=25):
    fn(); fn(); torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record(); fn(); end.record(); end.synchronize()
    inner = max(1, min(200, int(2.0 / max(start.elapsed_time(end), 1e-4))))
    times = []
    for _ in range(samples):
        start.record()
        for _ in range(inner):
            fn()
        end.record(); end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return statistics.median(times)


n = 1 << 26
a = torch.rand(n, device=dev); b = torch.empty_like(a)
ms = median_ms(lambda: b.copy_(a))
print(f"| copy | {n:,} floats | {ms:.3f} ms | {8 * n / ms / 1e6:.0f} GB/s (read + write) |")

shapes = [  # (name, M, N, K, transA, transB)
    ("4096^3", 4096, 4096, 4096, False, False),
    ("qkv [8320,192]x[192,576]", 8320, 576, 192, False, False),
    ("proj [8320,384]x[384,192]", 8320, 192, 384, False, False),
    ("dW [576,8320]x[8320,192] A^T", 576, 192, 8320, True, False),
    ("dX [8320,576]x[576,192]^T B^T", 8320, 192, 576, False, True),
]
for name, m, nn, k, ta, tb in shapes:
    A = torch.rand(k, m, device=dev).t() if ta else torch.rand(m, k, device=dev)
    B = torch.rand(nn, k, device=dev).t() if tb else torch.rand(k, nn, device=dev)
    C = torch.empty(m, nn, device=dev)
    ms = median_ms(lambda: torch.mm(A, B, out=C))
    print(f"| sgemm {name} | {ms:.3f} ms | {2 * m * nn * k / ms / 1e6:.0f} GFLOP/s |")

Q = torch.rand(384, 65, 64, device=dev); K = torch.rand(384, 65, 64, device=dev)
S = torch.empty(384, 65, 65, device=dev)
ms = median_ms(lambda: torch.bmm(Q, K.transpose(1, 2), out=S))
print(f"| bmm [65,64]x[64,65] x384 B^T | {ms:.3f} ms | {2 * 384 * 65 * 65 * 64 / ms / 1e6:.0f} GFLOP/s |")
