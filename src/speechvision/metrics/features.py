"""Stage 1 of every image metric: uint8 images -> Inception pool features (B, 2048).

Input contract: uint8 RGB arrays (N, H, W, 3) or tensors (N, 3, H, W); resize to 299x299 is
bilinear without antialias (:meth:`~speechvision.models.image_encoder.InceptionFeatures.preprocess`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch


def load_images_uint8(paths: Sequence[str | Path]) -> np.ndarray:
    """Read image files as (N, H, W, 3) uint8 RGB (all must share one size)."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def inception_features(load_batch: Callable[[int, int], np.ndarray], n: int, *, batch_size: int = 32,
                       model=None, device: str = "cpu", progress: bool = True) -> np.ndarray:
    """Pool features of ``n`` images; ``load_batch(start, stop)`` returns (b, H, W, 3) uint8.

    Returns (n, 2048) float32. Deterministic and independent of ``batch_size`` (eval mode).
    """
    from tqdm import tqdm

    from ..models.image_encoder import InceptionFeatures

    model = model or InceptionFeatures(device=device)
    out = np.zeros((n, 2048), np.float32)
    with tqdm(total=n, desc="Inception features", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            batch = torch.from_numpy(load_batch(start, stop)).permute(0, 3, 1, 2).to(device)
            out[start:stop] = model(batch).cpu().numpy()
            bar.update(stop - start)
    return out
