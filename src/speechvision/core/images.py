"""Images: the one conversion between uint8 and float [-1, 1], and PNG writing (single images and grids).

Conventions: float images are (B, 3, H, W) in [-1, 1] (the generator's tanh range); uint8 images are
(B, 3, H, W) tensors or (B, H, W, 3) arrays with values 0..255. uint8 -> float is ``x / 127.5 - 1``;
float -> uint8 clamps to [-1, 1] and rounds ``(x + 1) * 127.5`` (as the official S2IGAN code saves images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechvision.core.atomic import atomic_path


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 tensor of any shape (e.g. (B, 3, H, W)) -> float32 in [-1, 1]."""
    return images_uint8.float() / 127.5 - 1.0


def to_uint8_tensor(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1] (clamped) -> (B, 3, H, W) uint8 on the CPU."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().cpu()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8 array (for PIL, metrics, the web page)."""
    return to_uint8_tensor(images).permute(0, 2, 3, 1).numpy()


def save_png(image_uint8: np.ndarray, path: str | Path) -> None:
    """One (H, W, 3) or (H, W) uint8 array -> PNG at ``path``, atomically (parent folder created)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image_uint8).save(tmp, format="PNG")


def save_pngs(images: torch.Tensor, paths: list[Path]) -> None:
    """(B, 3, H, W) float in [-1, 1] -> one PNG per image, ``paths[i]`` for image i."""
    for img, p in zip(to_uint8(images), paths):
        save_png(img, p)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """(B, 3, H, W) float in [-1, 1] -> one PNG grid of ``nrow`` columns (the last row padded white)."""
    from einops import rearrange

    B = images.shape[0]
    pad = (-B) % nrow
    x = torch.cat([images, images.new_ones(pad, *images.shape[1:])]) if pad else images
    save_png(rearrange(to_uint8_tensor(x), "(r c) ch h w -> (r h) (c w) ch", c=nrow).numpy(), path)
