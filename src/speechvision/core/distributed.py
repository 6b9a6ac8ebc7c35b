"""Data-parallel training with torch.distributed (``torchrun --nproc_per_node N -m speechvision train ...``).

Each process reads the same seeded global batch and keeps its contiguous slice ``[r * B/N, (r+1) * B/N)``
(what a distributed sampler with a shared seed does); gradients are averaged across processes after
every phase's backward pass (one flattened all-reduce per phase); only rank 0 logs, snapshots and
writes checkpoints. ``gloo`` on CPU, ``nccl`` on GPUs. With every per-sample loss a batch mean,
N processes with local batch B/N take the same steps as one process with batch B; batch-norm layers
see only the local slice unless :func:`convert_sync_batchnorm` makes them sync (this module's
:class:`SyncBatchNorm` also runs on CPU/gloo, where ``torch.nn.SyncBatchNorm`` does not).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """rank, world_size and local_rank of this process (1 process: 0, 1, 0)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_from_env(device: str | None = None) -> tuple[DistInfo, str | None]:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); a plain
    run returns ``DistInfo()``. Returns the info and the device this process should use
    (``cuda:LOCAL_RANK`` for CUDA runs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistInfo(rank, world, local), device or "cpu"


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_slice(batch_size: int, info: DistInfo) -> slice:
    """This rank's contiguous part of a global batch. Raises ValueError if it does not divide evenly."""
    if batch_size % info.world_size:
        raise ValueError(f"the global batch size {batch_size} must be divisible by the {info.world_size} processes")
    n = batch_size // info.world_size
    return slice(info.rank * n, (info.rank + 1) * n)


def shard(value, sl: slice, batch_size: int):
    """Slice every batch-sized tensor (dim 0 == ``batch_size``) of a (nested) batch dict/list."""
    if isinstance(value, dict):
        return {k: shard(v, sl, batch_size) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(shard(v, sl, batch_size) for v in value)
    if torch.is_tensor(value) and value.ndim > 0 and value.shape[0] == batch_size:
        return value[sl]
    return value


def average_gradients(params, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flattened buffer."""
    if not info.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_across(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average logged scalars across processes (rank 0 logs the global figure)."""
    if not info.active or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t)}


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are over the global batch (all processes), on any backend.

    Input (B, C, ...) as BatchNorm1d/2d. Mean, then the biased variance, come from all-reduced
    per-channel sums (two differentiable ``torch.distributed.nn`` all-reduces); running statistics use
    the unbiased variance, as ``nn.BatchNorm``. Outside a process group it is plain batch norm.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        warnings.filterwarnings("ignore", message=".*distributed.nn.functional.all_reduce is deprecated")
        dims = [0] + list(range(2, x.dim()))
        c = x.shape[1]
        shape = [1, c] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        # Two passes (mean, then the centred second moment), as precise as nn.BatchNorm's own statistics.
        first = all_reduce(torch.cat([x.sum(dims), count]))
        n = first[-1]
        mean = first[:c] / n
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d of ``module`` by :class:`SyncBatchNorm`, keeping its parameters and buffers."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            new = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(next(child.buffers()).device if any(True for _ in child.buffers()) else "cpu")
            setattr(module, name, new)
        else:
            convert_sync_batchnorm(child)
    return module
