"""Raw f32 matmul throughput of PyTorch on 2 threads, same shapes as benches/matmul.rs."""
import time

import torch

torch.set_num_threads(2)
print("| m×k×n | ms | GFLOP/s |\n|---|---:|---:|")
SHAPES = [
    (4096, 256, 1024), (4096, 1024, 256), (4096, 256, 2048),  # small tier, forward
    (4096, 128, 512), (4096, 512, 128), (4096, 128, 2048),  # tiny tier, forward
    (128, 4096, 512), (512, 4096, 128),  # tiny tier, weight gradients
]
for m, k, n in SHAPES:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    s = (time.perf_counter() - t) / 10
    print(f"| {m}×{k}×{n} | {s * 1e3:.2f} | {2 * m * k * n / s / 1e9:.1f} |")
