"""The registered metrics and their input contract.

Each metric is ``fn(ctx) -> {report key: entry}`` (:mod:`speechvision.metrics.registry`) and only
reads ``ctx``; ``ctx`` is anything with the attributes below (duck typed; a
:class:`typing.Protocol` documents them). A context computes each input lazily, once, and caches
it, so metrics that share an input (FID and mAP share the real images' Inception features) pay
for it once. :class:`speechvision.s2igan.eval_context.EvaluationContext` is the context of
``speechvision evaluate``; a test can pass any object with the same attributes.

Input contract (the attributes a metric reads; uint8 images are (N, H, W, 3), features float32):

* ``fid``: ``fake_features`` (N, 2048) Inception pool features of the N generated images;
  ``real_statistics`` (:class:`~speechvision.metrics.fid.Statistics` of the M real split images,
  cached on disk by the context); ``baseline_features`` (M', 2048) of a real train subsample
  (M' <= M) or None; ``split`` (the real split's name, for the baseline's note).
* ``is``: ``posteriors`` (:class:`ClassPosteriors` of generated and real images).
* ``map``: ``retrieval_set`` (:class:`RetrievalSet`: real queries, generated gallery).
* ``semantic``: ``judgement`` (:class:`AttributeJudgement`: predicted vs spoken attributes).
* ``sen``: ``speech`` (Q, D), ``image`` (Q, D) embeddings, speech i describing image i, and class
  ``labels`` (Q,) (:class:`PairedEmbeddings`).

The stage modules (:mod:`.fid`, ...) are imported inside the callables so that importing the
registry (the CLI does, to list the names) costs no numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from speechvision.metrics.registry import register_metric

if TYPE_CHECKING:
    import numpy as np

    from speechvision.metrics.fid import Statistics


@dataclass(frozen=True)
class ClassPosteriors:
    """p(y|x) of generated (N, K) and real (M, K) images (float64 rows summing to 1); ``model``
    and ``head`` name the classifier that gave them (written to the report)."""

    fake: np.ndarray
    real: np.ndarray
    model: str
    head: str


@dataclass(frozen=True)
class AttributeJudgement:
    """Attribute indices per attribute: predicted ``pred`` and spoken ``truth`` of the N generated
    images ((N,) int each), ``groups`` (name -> (N,) bool mask, e.g. the images spoken by held-out
    voices; empty groups are skipped), and ``real_pred`` / ``real_truth`` of the M real images."""

    pred: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    groups: dict[str, np.ndarray]
    real_pred: dict[str, np.ndarray]
    real_truth: dict[str, np.ndarray]


@dataclass(frozen=True)
class RetrievalSet:
    """Real query features (Q, D) with labels (Q,), generated gallery features (G, D) with labels
    (G,); ``per_query`` = gallery images generated per query (captions per query image)."""

    query_features: np.ndarray
    query_labels: np.ndarray
    gallery_features: np.ndarray
    gallery_labels: np.ndarray
    per_query: int


@dataclass(frozen=True)
class PairedEmbeddings:
    """The ``sen`` context: speech (Q, D) and image (Q, D) embeddings (speech i describes image i),
    class labels (Q,)."""

    speech: np.ndarray
    image: np.ndarray
    labels: np.ndarray


class GeneratorContext(Protocol):
    """What the generator metrics read (see the module docstring); each attribute computed once."""

    split: str

    @property
    def fake_features(self) -> np.ndarray:
        """(N, 2048) float32 Inception pool features of the N generated images."""

    @property
    def real_statistics(self) -> Statistics:
        """FID statistics (mu (2048,), sigma (2048, 2048), float64) of the M real split images."""

    @property
    def baseline_features(self) -> np.ndarray | None:
        """(M', 2048) features of a real train subsample (M' <= M), or None for no baseline."""

    @property
    def posteriors(self) -> ClassPosteriors:
        """Class posteriors of the generated and the real images, for the Inception Score."""

    @property
    def judgement(self) -> AttributeJudgement:
        """Predicted vs spoken attribute indices, for semantic accuracy."""

    @property
    def retrieval_set(self) -> RetrievalSet:
        """Real queries and generated gallery, for mAP."""


@register_metric("fid", needs=("inception",), protocol=(
    "FID between Inception pool features of the real split images and of one generated image per evaluated "
    "caption (pytorch-fid formula, float64)"))
def fid(ctx: GeneratorContext) -> dict:
    """``fid`` (real split vs generated) and, when ``ctx.baseline_features`` is not None,
    ``fid_real_train_baseline`` (real split vs real train subsample); FID in Inception-feature units."""
    from speechvision.metrics.fid import feature_statistics, frechet_distance

    real, fake = ctx.real_statistics, ctx.fake_features
    out = {"fid": {"value": frechet_distance(real, feature_statistics(fake)), "real_images": real.n,
                   "fake_images": int(len(fake))}}
    base = ctx.baseline_features
    if base is not None:
        out["fid_real_train_baseline"] = {
            "value": frechet_distance(real, feature_statistics(base)), "real_images": real.n,
            "train_images": int(len(base)),
            "note": f"real {ctx.split} images vs a random subsample of real train images of the same size"}
    return out


@register_metric("is", needs=("classifier",), protocol=(
    "exp(E KL(p(y|x) || p(y))) over 10 splits of the generated images; p(y|x) from the domain classifier's "
    "class head"))
def inception_score_metric(ctx: GeneratorContext) -> dict:
    """``is`` of the generated images and ``is_real`` of the real ones, over min(10, N) splits each."""
    from speechvision.metrics.inception_score import inception_score

    p = ctx.posteriors
    splits = min(10, len(p.fake))
    m, s = inception_score(p.fake, splits)
    rm, rs = inception_score(p.real, min(10, len(p.real)))
    return {"is": {"mean": m, "std": s, "splits": splits, "images": int(len(p.fake)), "classifier": p.model,
                   "head": p.head, "classes": int(p.fake.shape[1])},
            "is_real": {"mean": rm, "std": rs, "images": int(len(p.real))}}


@register_metric("map", needs=("inception",), protocol=(
    "official S2IGAN mAP: 2 real test images per class as queries, gallery = images generated from their "
    "captions, Inception pool features, cosine, class relevance; R@1/2/3/5/10"))
def generation_map_metric(ctx: GeneratorContext) -> dict:
    """``map``: mAP (fraction, not %), R@k, query and gallery sizes, captions per query."""
    from speechvision.metrics.generation_map import generation_map

    r = ctx.retrieval_set
    out = generation_map(r.query_features, r.query_labels, r.gallery_features, r.gallery_labels)
    out["captions_per_query"] = r.per_query
    return {"map": out}


@register_metric("semantic", needs=("classifier",), protocol=(
    "accuracy of the domain classifiers on generated images against the spoken attributes, overall and per "
    "voice group (train / held-out voices)"))
def semantic_metric(ctx: GeneratorContext) -> dict:
    """``semantic``: attribute accuracies (fractions) overall (``all``), per non-empty group, and of the real images."""
    from speechvision.metrics.semantic import attribute_accuracy, grouped_accuracy

    j = ctx.judgement
    sem = grouped_accuracy(j.pred, j.truth, j.groups)
    sem["real_images"] = attribute_accuracy(j.real_pred, j.real_truth)
    return {"semantic": sem}


@register_metric("sen", needs=("sen",), protocol=(
    "speech->image retrieval of the SEN: class mAP, R@k, median rank (evaluate sen)"))
def sen_retrieval(ctx: PairedEmbeddings) -> dict:
    """``sen``: :func:`~speechvision.metrics.retrieval.retrieval_report` of ``ctx.speech`` (Q, D),
    ``ctx.image`` (Q, D) (speech i describes image i) and class ``ctx.labels`` (Q,)."""
    from speechvision.metrics.retrieval import retrieval_report

    return {"sen": retrieval_report(ctx.speech, ctx.image, ctx.labels)}
