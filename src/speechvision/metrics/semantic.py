"""Semantic accuracy of generated images: does the image show what was said?

Pure functions over predicted and intended attribute indices (from domain classifiers trained on
real images, never the SEN).
"""

from __future__ import annotations

import numpy as np


def attribute_accuracy(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Per attribute, the fraction of images whose predicted value is the spoken one; plus ``all``
    (every attribute right)."""
    out = {f"{k}_accuracy": float(np.mean(pred[k] == truth[k])) for k in truth}
    out["all_accuracy"] = float(np.mean(np.all([pred[k] == truth[k] for k in truth], axis=0)))
    out["images"] = int(len(next(iter(truth.values()))))
    return out


def keyword_follow_rate(pred: np.ndarray, spoken: np.ndarray) -> float:
    """Colour-keyword swap: fraction of (sentence, colour word) items whose image has the spoken colour."""
    return float(np.mean(np.asarray(pred) == np.asarray(spoken)))
