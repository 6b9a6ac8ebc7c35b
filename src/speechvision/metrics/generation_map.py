"""mAP and R@k of generated images, the official S2IGAN evaluation (S2IGAN Sec. 3.2).

Protocol: queries are real test images, ``per_class`` (2) per class; the gallery is the images
generated from those query images' captions (CUB: 100 queries, 1000 generated images). Features
are Inception pool features (2048-d), compared by cosine similarity; a gallery image is relevant
when its class equals the query's. AP = mean over relevant items of (hits so far / rank).
For Flickr8k/Places-style data every image is its own class and R@1/5/10/50 are reported.

Stages: images -> features (:mod:`.features`) -> (Q, G) cosine scores -> mAP, R@k.
"""

from __future__ import annotations

import numpy as np

from speechvision.metrics.retrieval import class_relevance, cosine_scores, mean_average_precision, recall_at_k

PAPER_KS = (1, 2, 3, 5, 10)
FLICKR_KS = (1, 5, 10, 50)


def select_queries(labels: np.ndarray, per_class: int = 2, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` items of every class (seeded random choice, sorted by class).

    Classes with fewer items contribute all they have."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picks.extend(sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist()))
    return np.asarray(picks, dtype=np.int64)


def generation_map(query_features: np.ndarray, query_labels: np.ndarray, gallery_features: np.ndarray,
                   gallery_labels: np.ndarray, ks=PAPER_KS) -> dict[str, float]:
    """(Q, D) real-image features and (G, D) generated-image features with their labels ->
    ``{"mAP", "R@k"..., "queries", "gallery"}`` (class relevance, cosine similarity)."""
    scores = cosine_scores(query_features, gallery_features)
    rel = class_relevance(query_labels, gallery_labels)
    out = {"mAP": mean_average_precision(scores, rel), **recall_at_k(scores, rel, ks)}
    out.update(queries=int(len(query_labels)), gallery=int(len(gallery_labels)))
    return out
