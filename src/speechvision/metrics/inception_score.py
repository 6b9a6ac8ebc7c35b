"""Inception Score (Salimans et al., 2016) over a domain classifier's class posteriors.

``IS = exp(E_x KL(p(y|x) || p(y)))``, computed over ``splits`` equal chunks (10, as StackGAN and
S2IGAN), reported as mean and standard deviation over the chunks. S2IGAN uses an Inception
fine-tuned on birds/flowers (StackGAN); here the posteriors come from a classifier trained on the
dataset's real images (``speechvision train classifier``).

Stages: images -> class probabilities (N, K) -> score.
"""

from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(N, K) class probabilities (rows sum to 1) -> (mean, std) of the IS over ``splits`` chunks.

    Bounds: 1 (every image gets the same posterior) to K (confident and uniform over classes).

    Raises:
        ValueError: not (N, K) probabilities, or N < splits.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("inception_score needs (N, K) rows of probabilities")
    if len(p) < splits:
        raise ValueError(f"inception_score needs at least {splits} images for {splits} splits, got {len(p)}")
    scores = []
    for chunk in np.array_split(p, splits):
        py = chunk.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(chunk > 0, chunk * (np.log(chunk) - np.log(py)), 0.0).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
