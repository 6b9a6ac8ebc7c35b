"""Images: the one conversion between uint8 (B, H, W, 3) / (B, 3, H, W) and float [-1, 1] (B, 3, H, W), and
PNG writing (single images and grids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def save_pngs(images: torch.Tensor, paths: list[Path]) -> None:
    from PIL import Image

    for img, p in zip(to_uint8(images), paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float in [-1, 1]."""
    return images_uint8.float() / 127.5 - 1.0


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """(B, 3, H, W) in [-1, 1] -> one PNG grid."""
    from einops import rearrange
    from PIL import Image

    B = images.shape[0]
    pad = (-B) % nrow
    x = torch.cat([images, images.new_ones(pad, *images.shape[1:])]) if pad else images
    grid = rearrange(((x.clamp(-1, 1) + 1) * 127.5).round().byte().cpu(), "(r c) ch h w -> (r h) (c w) ch", c=nrow)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid.numpy()).save(tmp)
    tmp.replace(path)
