"""Semantic accuracy of generated images: does the image show what was said?

Pure functions over predicted and intended attribute indices (from domain classifiers trained on
real images, never the SEN). Stages: images -> classifier posteriors -> argmax indices (N,) per
attribute -> accuracy.
"""

from __future__ import annotations

import numpy as np


def attribute_accuracy(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """(N,) predicted and spoken value indices per attribute -> per attribute, the fraction of images
    whose predicted value is the spoken one (``<attribute>_accuracy``), ``all_accuracy`` (every
    attribute right) and ``images`` (N)."""
    out = {f"{k}_accuracy": float(np.mean(pred[k] == truth[k])) for k in truth}
    out["all_accuracy"] = float(np.mean(np.all([pred[k] == truth[k] for k in truth], axis=0)))
    out["images"] = int(len(next(iter(truth.values()))))
    return out


def keyword_follow_rate(pred: np.ndarray, spoken: np.ndarray) -> float:
    """Colour-keyword swap: fraction of (sentence, colour word) items whose image has the spoken colour."""
    return float(np.mean(np.asarray(pred) == np.asarray(spoken)))


def grouped_accuracy(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                     groups: dict[str, np.ndarray]) -> dict[str, dict]:
    """:func:`attribute_accuracy` over all images (``all``) and over each group's (N,) bool mask
    (groups without an image are left out)."""
    out = {"all": attribute_accuracy(pred, truth)}
    for name, mask in groups.items():
        if mask.any():
            out[name] = attribute_accuracy({k: v[mask] for k, v in pred.items()},
                                           {k: v[mask] for k, v in truth.items()})
    return out


def weak_judge_notes(semantic: dict, split: str, floor: float = 0.75) -> list[str]:
    """One line per attribute that the judges name right on fewer than ``floor`` of the split's *real* images
    (``semantic["real_images"]``, from the ``semantic`` metric): there the generated images' accuracy measures
    the judges as much as the generator. Judges trained on the train split alone score the real images of
    spoken-fashion's ``test_unseen`` (garment-colour combinations absent from train) at about 0.41 garment,
    because they read colour as a garment cue; ``train classifier --recolour-p 1`` removes that."""
    real = semantic.get("real_images", {})
    return [f"the judges name the {key.removesuffix('_accuracy')} of only {value:.0%} of the real {split} images, "
            f"so the generated images' {key} there is bounded by the judges (see train classifier --recolour-p)"
            for key, value in real.items() if key.endswith("_accuracy") and key != "all_accuracy" and value < floor]
