"""The machine's measured limit: the dense fp32 matmul rate, stated beside every absolute time."""

from __future__ import annotations

import time

import torch


def sync(device: str) -> None:
    """Wait for queued GPU work (no-op on the CPU), so that a timer measures the work itself."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_flops(device: str = "cpu", n: int = 2048, seconds: float = 1.0) -> float:
    """Best dense fp32 (n x n) @ (n x n) rate in FLOP/s over a ``seconds`` burst: the hardware limit of
    this process on ``device``, with PyTorch's own thread count."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = max(best, 4 * 2 * n ** 3 / (time.perf_counter() - t))
    return best
