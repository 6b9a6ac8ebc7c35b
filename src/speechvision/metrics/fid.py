"""Frechet Inception Distance (Heusel et al., 2017), as pytorch-fid computes it (S2IGAN Sec. 3.2).

Stages: uint8 images -> Inception pool features (N, 2048) (:mod:`.features`) -> statistics
(mean (D,), covariance (D, D), float64) -> score. The score is
``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``.

``tr((S1 S2)^(1/2))`` is computed from the eigenvalues of the symmetric PSD matrix
``S1^(1/2) S2 S1^(1/2)`` (which has the same eigenvalues as ``S1 S2``), in float64; this is
exact for PSD inputs and needs no complex arithmetic. The tests check it against
``scipy.linalg.sqrtm`` on random features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Statistics:
    """Gaussian fit of features: mu (D,), sigma (D, D), both float64; n = number of images."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    def save(self, path: str | Path) -> None:
        """Atomic write as safetensors (no pickle)."""
        import torch
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"mu": torch.from_numpy(self.mu), "sigma": torch.from_numpy(self.sigma)}, str(tmp),
                  metadata={"n": str(self.n)})
        tmp.replace(path)

    @staticmethod
    def load(path: str | Path) -> Statistics:
        """Read what :meth:`save` wrote. Raises OSError / safetensors errors for a missing or bad file."""
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            return Statistics(f.get_tensor("mu"), f.get_tensor("sigma"), int(f.metadata()["n"]))


def feature_statistics(features: np.ndarray) -> Statistics:
    """(N, D) features -> :class:`Statistics` (unbiased covariance, as numpy ``np.cov``).

    Raises:
        ValueError: fewer than 2 feature rows, or non-finite features.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"FID needs (N >= 2, D) features, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("FID features contain NaN or inf")
    mu = x.mean(axis=0)
    xc = x - mu
    return Statistics(mu, xc.T @ xc / (len(x) - 1), len(x))


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """Frechet distance between two Gaussians (float64)."""
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature sizes differ: {a.mu.shape} vs {b.mu.shape}")
    diff = a.mu - b.mu
    root = _psd_sqrt(a.sigma)
    inner = root @ b.sigma @ root
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_covmean)


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two (N, 2048) feature sets."""
    return frechet_distance(feature_statistics(real), feature_statistics(fake))
