"""Retrieval metrics: mAP with class relevance (official S2IGAN evaluation), R@k, median rank.

Staged pure functions over embeddings: (queries (Q, D), gallery (G, D)) -> scores (Q, G) ->
ranks -> metrics. Ties are broken by gallery order (a stable sort), so results are deterministic.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def cosine_scores(queries: torch.Tensor | np.ndarray, gallery: torch.Tensor | np.ndarray) -> np.ndarray:
    """(Q, D), (G, D) -> (Q, G) float64 cosine similarities."""
    q = F.normalize(torch.as_tensor(np.asarray(queries), dtype=torch.float64), dim=-1)
    g = F.normalize(torch.as_tensor(np.asarray(gallery), dtype=torch.float64), dim=-1)
    return (q @ g.T).numpy()


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")


def mean_average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """mAP as the official code: per query, AP = mean over relevant items of (hits so far / rank).

    Args:
        scores: (Q, G) similarities; relevant: (Q, G) bool. Queries without a relevant item are skipped.
    """
    rel = np.take_along_axis(relevant, _order(scores), axis=1).astype(np.float64)  # (Q, G) by rank
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)[None, :]
    n_rel = rel.sum(axis=1)
    keep = n_rel > 0
    ap = (rel * hits / ranks).sum(axis=1)[keep] / n_rel[keep]
    return float(ap.mean()) if ap.size else float("nan")


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """Fraction of queries with at least one relevant item in the top k, for each k."""
    rel = np.take_along_axis(relevant, _order(scores), axis=1)
    return {f"R@{k}": float(rel[:, :k].any(axis=1).mean()) for k in ks}


def median_rank(scores: np.ndarray, target: np.ndarray) -> float:
    """Median 1-based rank of each query's own target item; ``target`` (Q,) gallery indices."""
    ranks = (scores > scores[np.arange(len(target)), target][:, None]).sum(axis=1) + 1
    return float(np.median(ranks))


def class_relevance(query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """(Q,), (G,) class labels -> (Q, G) bool: gallery item j is relevant to query i when their classes match."""
    return np.asarray(query_labels)[:, None] == np.asarray(gallery_labels)[None, :]


def retrieval_report(speech: np.ndarray, image: np.ndarray, labels: np.ndarray, *,
                     ks=(1, 5, 10)) -> dict[str, float]:
    """Speech i describes image i. Returns class-relevance mAP and R@k (speech->image), and
    instance R@k and median rank in both directions (the Flickr8k/Places protocol)."""
    s2i = cosine_scores(speech, image)
    rel = class_relevance(labels, labels)
    own = np.eye(len(labels), dtype=bool)
    out = {"mAP": mean_average_precision(s2i, rel)}
    out.update({f"class_{k}": v for k, v in recall_at_k(s2i, rel, ks).items()})
    out.update({f"s2i_{k}": v for k, v in recall_at_k(s2i, own, ks).items()})
    out.update({f"i2s_{k}": v for k, v in recall_at_k(s2i.T, own, ks).items()})
    idx = np.arange(len(labels))
    out["s2i_median_rank"] = median_rank(s2i, idx)
    out["i2s_median_rank"] = median_rank(s2i.T, idx)
    out["queries"] = int(len(labels))
    return out
