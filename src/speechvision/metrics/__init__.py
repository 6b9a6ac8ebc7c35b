"""Metrics as staged pure functions: images -> features -> statistics -> score.

One file per metric; :data:`REGISTRY` names them for ``speechvision evaluate --metrics``:

========== ============================================ =====================================
name       what                                          module
========== ============================================ =====================================
fid        Frechet Inception Distance, real vs generated :mod:`.fid`
is         Inception Score (domain classifier), 10 splits :mod:`.inception_score`
map        mAP + R@k, real queries vs generated gallery  :mod:`.generation_map`
semantic   class/attribute accuracy of generated images  :mod:`.semantic`
sen        SEN speech->image retrieval (mAP, R@k, rank)  :mod:`.retrieval`
========== ============================================ =====================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric: its name, what it reads, and one line on the protocol."""

    name: str
    needs: tuple[str, ...]
    protocol: str


REGISTRY: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("fid", ("inception",), "FID between Inception pool features of the real split images and of one "
               "generated image per evaluated caption (pytorch-fid formula, float64)"),
    MetricInfo("is", ("classifier",), "exp(E KL(p(y|x) || p(y))) over 10 splits of the generated images; p(y|x) from "
               "the domain classifier's class head"),
    MetricInfo("map", ("inception",), "official S2IGAN mAP: 2 real test images per class as queries, gallery = images "
               "generated from their captions, Inception pool features, cosine, class relevance; R@1/2/3/5/10"),
    MetricInfo("semantic", ("classifier",), "accuracy of the domain classifiers on generated images against the "
               "spoken attributes, overall and per voice group (train / held-out voices)"),
    MetricInfo("sen", ("sen",), "speech->image retrieval of the SEN: class mAP, R@k, median rank (evaluate sen)"),
)}


GENERATOR_METRICS = ("fid", "is", "map", "semantic")


def parse_metrics(text: str, allowed=GENERATOR_METRICS) -> list[str]:
    """``"fid,is"`` -> ``["fid", "is"]``; raises ValueError naming an unknown metric."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown metric {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return names
