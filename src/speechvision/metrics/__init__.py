"""Metrics as staged pure functions: images -> features -> statistics -> score, and a registry of them.

One file per metric (the stages); :data:`REGISTRY` maps each name of ``speechvision evaluate
--metrics`` to a callable ``fn(ctx) -> {report key: entry}`` (:mod:`.registry`, :mod:`.suite`):

========== ============================================ =====================================
name       what                                          stages in
========== ============================================ =====================================
fid        Frechet Inception Distance, real vs generated :mod:`.features`, :mod:`.fid`
is         Inception Score (domain classifier), 10 splits :mod:`.inception_score`
map        mAP + R@k, real queries vs generated gallery  :mod:`.generation_map`, :mod:`.retrieval`
semantic   class/attribute accuracy of generated images  :mod:`.semantic`
sen        SEN speech->image retrieval (mAP, R@k, rank)  :mod:`.retrieval`
========== ============================================ =====================================

Layering: this package takes tensors, arrays or image folders and never imports
``speechvision.s2igan``. The registered callables read an evaluation context through the input
contract documented in :mod:`.suite` (generated-image features, real statistics, posteriors, ...);
the context that knows datasets, checkpoints and the generator,
:class:`speechvision.s2igan.eval_context.EvaluationContext`, lives beside the generator and is
built once by :func:`speechvision.s2igan.evaluate.evaluate`, which then runs
:func:`compute_metrics` over the requested names. Importing this package imports neither numpy
nor torch (the CLI reads :data:`GENERATOR_METRICS` to build its parser).
"""

from __future__ import annotations

from speechvision.metrics.registry import (
    GENERATOR_METRICS,
    REGISTRY,
    Metric,
    check_metric_names,
    compute_metrics,
    get_metric,
    parse_metrics,
    register_metric,
)
from speechvision.metrics.suite import (  # importing the suite registers its metrics
    AttributeJudgement,
    ClassPosteriors,
    GeneratorContext,
    PairedEmbeddings,
    RetrievalSet,
)

__all__ = ["GENERATOR_METRICS", "REGISTRY", "AttributeJudgement", "ClassPosteriors", "GeneratorContext", "Metric",
           "PairedEmbeddings", "RetrievalSet", "check_metric_names", "compute_metrics", "get_metric", "parse_metrics",
           "register_metric"]
