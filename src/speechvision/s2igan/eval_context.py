"""The evaluation context of ``speechvision evaluate``: a dataset split, a generator and the judging models.

:class:`EvaluationContext` implements the input contract of :mod:`speechvision.metrics.suite`
(``fake_features``, ``real_statistics``, ``baseline_features``, ``posteriors``, ``judgement``,
``retrieval_set``) for S2IGAN on a speechvision dataset. Every input is a cached property,
computed on first use and shared by the metrics that read it: the generated uint8 images are made
once for FID, IS and semantic accuracy; the Inception features of the dataset's real images are
computed once (and cached on disk) for FID and mAP; the real split's FID statistics are cached on
disk (:func:`cached_real_statistics`). Timings land in ``timing``.

It lives here, not in :mod:`speechvision.metrics`, because it knows datasets, checkpoints and the
generator; the metrics package only sees the arrays it hands over.

Generated set: for every record of the split, its first ``captions_per_image`` captions with
audio, image ``i`` generated with seed ``seed + i`` (batches of ``batch_size``). mAP gallery: the
first ``map_captions`` captions of 2 real images per class, seeds from ``seed + 1_000_000``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from speechvision.core.cleanup import Cleanup
from speechvision.core.inception import WeightsError
from speechvision.data.manifest import Caption, Dataset, DatasetError, Record, load_dataset
from speechvision.metrics import GENERATOR_METRICS, REGISTRY, AttributeJudgement, ClassPosteriors, RetrievalSet
from speechvision.metrics.fid import Statistics
from speechvision.s2igan.pipeline import S2IGANPipeline

IS_MODELS = ("classifier", "inception")


def generate_uint8(pipe: S2IGANPipeline, wavs: list[Path], *, seed: int, batch_size: int, progress: bool,
                   desc: str) -> np.ndarray:
    """One final-stage image per wav, image ``i`` with seed ``seed + i`` -> (N, H, W, 3) uint8."""
    from tqdm import tqdm

    from speechvision.core.images import to_uint8

    out = []
    for s in tqdm(range(0, len(wavs), batch_size), desc=desc, unit="batch", disable=not progress):
        out.append(to_uint8(pipe.speech_to_images(wavs[s:s + batch_size], seed=seed + s)[-1]))
    return np.concatenate(out)


def cached_real_statistics(ds: Dataset, split: str, features: np.ndarray, positions: list[int],
                           params: dict) -> Statistics:
    """FID statistics of ``features[positions]`` (a split's real images), cached as
    ``cache/fid-stats-<split>-<key>.safetensors`` (key: the split's image files and ``params``, the
    feature extractor's cache-key parameters)."""
    from speechvision.data.cache import content_key
    from speechvision.metrics.fid import feature_statistics

    key = content_key([ds.path(ds.records[i].image) for i in positions], {"kind": "fid-stats", **params})
    path = ds.root / "cache" / f"fid-stats-{split}-{key}.safetensors"
    if path.is_file():
        return Statistics.load(path)
    stats = feature_statistics(features[positions])
    stats.save(path)
    return stats


@dataclass(eq=False)
class EvaluationContext:
    """What the metrics of one ``evaluate`` run read, computed lazily and once (see the module docstring).

    Build it with :meth:`open`, which checks the request before any expensive work.
    """

    ds: Dataset
    records: list[Record]
    pipe: S2IGANPipeline
    split: str = "test"
    seed: int = 0
    captions_per_image: int = 1
    map_captions: int = 10
    classifier_path: str | Path | None = None
    classifier_head: str | None = None
    inception_weights: str | Path | None = None
    is_model: str = "classifier"
    batch_size: int = 64
    progress: bool = True
    timing: dict = field(default_factory=dict)

    @classmethod
    def open(cls, checkpoint: str | Path | None, data: str | Path, metrics, *, split: str = "test",
             limit: int | None = None, classifier_path: str | Path | None = None, is_model: str = "classifier",
             cleanup: Cleanup = Cleanup(), **options) -> EvaluationContext:
        """Load the dataset split (at most ``limit`` records) and the generator (its inputs cleaned by
        ``cleanup``), checking that ``metrics`` (registered names) can run; ``options`` are the other fields.

        Raises:
            DatasetError: an empty split, or metrics that need a classifier without one.
            ValueError: ``is_model`` not in :data:`IS_MODELS`.
            CheckpointError / WeightsError: an unusable checkpoint, or Inception weights without the
                1008-class layer for ``is_model="inception"``.
        """
        ds = load_dataset(data)
        records = ds.split(split)[:limit] if limit else ds.split(split)
        if not records:
            splits = ", ".join(sorted({r.split for r in ds.records}))
            raise DatasetError(f"{ds.root}: split {split!r} is empty (splits: {splits})")
        if is_model not in IS_MODELS:
            raise ValueError(f"is_model must be classifier or inception, got {is_model!r}")
        needs_cls = [m for m in metrics if "classifier" in cls.metric_needs(m, is_model)]
        if needs_cls and classifier_path is None:
            raise DatasetError(f"metrics {', '.join(needs_cls)} need --classifier (a run of `speechvision train "
                               "classifier`)")
        ctx = cls(ds, records, S2IGANPipeline.load(checkpoint, cleanup=cleanup), split, classifier_path=classifier_path,
                  is_model=is_model, **options)
        ctx.check_request(metrics, limit)
        if "is" in metrics and is_model == "inception" and not (ctx.inception.pytorch_fid and
                                                                 ctx.inception.net.has_logits):
            raise WeightsError("the Inception Score with the ImageNet Inception needs pytorch-fid's weights file "
                               "(pt_inception-2015-12-05-*.pth, with its 1008-class layer) as --inception-weights")
        return ctx

    def check_request(self, metrics, limit: int | None) -> None:
        """The checks of :meth:`open` that need the context, all before any image is generated: at least 2
        generated images (FID's covariance, the IS splits), seeds within the generator's range, and the
        classifier (loaded once here) with its head.

        Raises:
            DatasetError: fewer than 2 captions with audio in the split (``limit`` is named when given).
            InputError: a seed too large for this evaluation, or a classifier head the classifier lacks.
            CheckpointError: an unusable classifier.
        """
        from speechvision.core.errors import InputError, check_seed_range

        if any(m in GENERATOR_METRICS for m in metrics) and len(self.items) < 2:
            raise DatasetError(f"{self.ds.root}: split {self.split!r} gives {len(self.items)} image(s) to generate "
                               f"(captions with audio{f', --limit {limit}' if limit else ''}); FID and IS need at "
                               "least 2")
        n = len(self.records) * max(self.captions_per_image, self.map_captions)
        check_seed_range(self.seed, 1_000_000 + n, "--seed")
        if any("classifier" in self.metric_needs(m, self.is_model) for m in metrics):
            self.classifier  # noqa: B018 - load it now: CheckpointError before any work
            try:
                self.head  # noqa: B018
            except ValueError as e:  # select_head: no such head
                raise InputError(f"--classifier-head: {e}") from None

    @staticmethod
    def metric_needs(name: str, is_model: str = "classifier") -> tuple[str, ...]:
        """The models metric ``name`` reads: its registered ``needs``, but the Inception for ``is``
        with ``is_model="inception"``."""
        return ("inception",) if name == "is" and is_model == "inception" else REGISTRY[name].needs

    # ---- models ---------------------------------------------------------------------------------

    @cached_property
    def inception(self):
        """The :class:`~speechvision.core.inception.InceptionFeatures` of ``inception_weights``."""
        from speechvision.core.inception import InceptionFeatures

        return InceptionFeatures(self.inception_weights)

    @cached_property
    def feature_params(self) -> dict:
        """Cache-key parameters of the Inception features (written to the report)."""
        from speechvision.s2igan.image_features import inception_params

        return inception_params(self.inception_weights)

    @cached_property
    def classifier(self) -> tuple:
        """(model in eval mode, checkpoint dict) of ``classifier_path``."""
        from speechvision.s2igan.classifier import load_classifier

        return load_classifier(self.classifier_path)

    @cached_property
    def head(self) -> str:
        """The classifier head the IS reads (``classifier_head``, default the first)."""
        from speechvision.s2igan.classifier import select_head

        return select_head(self.classifier[0], self.classifier_head)

    # ---- images ---------------------------------------------------------------------------------

    @cached_property
    def items(self) -> list[tuple[int, Caption]]:
        """The generated set: (record index in ``records``, caption), one image each."""
        return [(ri, c) for ri, r in enumerate(self.records) for c in r.captions[:self.captions_per_image] if c.audio]

    @cached_property
    def fake_images(self) -> np.ndarray:
        """(N, H, W, 3) uint8 generated images, one per item (seed ``seed`` + position)."""
        t0 = time.perf_counter()
        images = generate_uint8(self.pipe, [self.ds.path(c.audio) for _, c in self.items], seed=self.seed,
                                batch_size=self.batch_size, progress=self.progress,
                                desc=f"generating {len(self.items)} images")
        self.timing["generate_s"] = round(time.perf_counter() - t0, 1)
        return images

    @cached_property
    def fake_labels(self) -> np.ndarray:
        """(N,) class ids of the generated images (their records' classes)."""
        return np.array([self.records[ri].class_id for ri, _ in self.items])

    @property
    def generated(self) -> bool:
        """Whether the generated set has been made (by a metric that read it)."""
        return "fake_images" in self.__dict__

    @cached_property
    def real_images(self) -> np.ndarray:
        """(M, H, W, 3) uint8 real images of the split's records."""
        from speechvision.metrics.features import load_images_uint8

        return load_images_uint8([self.ds.path(r.image) for r in self.records])

    @cached_property
    def real_labels(self) -> np.ndarray:
        """(M,) class ids of the real images."""
        return np.array([r.class_id for r in self.records])

    # ---- Inception features ---------------------------------------------------------------------

    @cached_property
    def positions(self) -> dict[str, int]:
        """Record id -> position in the dataset (rows of :attr:`dataset_features`)."""
        return {r.id: i for i, r in enumerate(self.ds.records)}

    @cached_property
    def split_positions(self) -> list[int]:
        """Dataset positions of ``records``."""
        return [self.positions[r.id] for r in self.records]

    @cached_property
    def dataset_features(self) -> np.ndarray:
        """(R, 2048) Inception pool features of all R real images of the dataset (cached on disk)."""
        from speechvision.s2igan.image_features import image_features

        return image_features(self.ds.root, [r.image for r in self.ds.records], progress=self.progress,
                              weights=self.inception_weights)

    def _features_of(self, images: np.ndarray, desc: str, timing: dict | None = None) -> np.ndarray:
        from speechvision.metrics.features import inception_features

        return inception_features(lambda a, b: images[a:b], len(images), model=self.inception,
                                  progress=self.progress, desc=desc, timing=timing)

    @cached_property
    def fake_features(self) -> np.ndarray:
        """(N, 2048) Inception pool features of the generated images."""
        feat_t: dict = {}
        feats = self._features_of(self.fake_images, "Inception features (generated)", feat_t)
        self.timing["inception_images_per_s"] = round(feat_t["images_per_s"], 2)
        return feats

    @cached_property
    def real_statistics(self) -> Statistics:
        """FID statistics of the split's real images (cached on disk)."""
        return cached_real_statistics(self.ds, self.split, self.dataset_features, self.split_positions,
                                      self.feature_params)

    @cached_property
    def baseline_features(self) -> np.ndarray | None:
        """(M', 2048) features of a random (seeded) subsample of real train images, M' = min(train, M);
        None with fewer than 2 train images."""
        train_pos = [self.positions[r.id] for r in self.ds.split("train")]
        if len(train_pos) < 2:
            return None
        size = min(len(train_pos), len(self.split_positions))
        sub = np.random.default_rng(self.seed).choice(train_pos, size=size, replace=False)
        return self.dataset_features[np.sort(sub)]

    # ---- classifier judgements ------------------------------------------------------------------

    @cached_property
    def fake_probabilities(self) -> dict[str, np.ndarray]:
        """{attribute: (N, K) classifier posteriors} of the generated images."""
        from speechvision.s2igan.classifier import classifier_input, probabilities

        return probabilities(self.classifier[0], classifier_input(self.fake_images))

    @cached_property
    def real_probabilities(self) -> dict[str, np.ndarray]:
        """{attribute: (M, K) classifier posteriors} of the real images."""
        from speechvision.s2igan.classifier import classifier_input, probabilities

        return probabilities(self.classifier[0], classifier_input(self.real_images))

    @cached_property
    def posteriors(self) -> ClassPosteriors:
        """IS posteriors: the classifier's ``head``, or (``is_model="inception"``) the ImageNet
        Inception's 1008 classes from the pool features."""
        if self.is_model == "inception":
            import torch

            with torch.no_grad():
                fake, real = (torch.softmax(self.inception.net.logits(torch.from_numpy(f)).double(), dim=1).numpy()
                              for f in (self.fake_features, self.dataset_features[self.split_positions]))
            return ClassPosteriors(fake, real, f"ImageNet Inception-v3 ({self.inception_weights})", "imagenet")
        return ClassPosteriors(self.fake_probabilities[self.head], self.real_probabilities[self.head],
                               str(self.classifier_path), self.head)

    @cached_property
    def judgement(self) -> AttributeJudgement:
        """Classifier predictions vs spoken attributes; groups ``train_voices`` / ``heldout_voices``."""
        vocab = self.classifier[1]["attributes"]
        probs, real_probs = self.fake_probabilities, self.real_probabilities
        truth = {k: np.array([vocab[k].index(self.records[ri].attributes[k]) for ri, _ in self.items]) for k in probs}
        real_truth = {k: np.array([vocab[k].index(r.attributes[k]) for r in self.records]) for k in real_probs}
        heldout = np.array([c.voice in self.ds.heldout_voices for _, c in self.items], dtype=bool)
        return AttributeJudgement(pred={k: v.argmax(1) for k, v in probs.items()}, truth=truth,
                                  groups={"train_voices": ~heldout, "heldout_voices": heldout},
                                  real_pred={k: v.argmax(1) for k, v in real_probs.items()}, real_truth=real_truth)

    # ---- mAP ------------------------------------------------------------------------------------

    @cached_property
    def retrieval_set(self) -> RetrievalSet:
        """Queries: 2 real images per class (seeded); gallery: images generated from their first
        ``map_captions`` captions."""
        from speechvision.metrics.generation_map import select_queries

        q_idx = select_queries(self.real_labels, per_class=2, seed=self.seed)
        gallery = [(qi, c) for qi in q_idx for c in self.records[qi].captions[:self.map_captions] if c.audio]
        g_img = generate_uint8(self.pipe, [self.ds.path(c.audio) for _, c in gallery], seed=self.seed + 1_000_000,
                               batch_size=self.batch_size, progress=self.progress,
                               desc=f"generating mAP gallery ({len(gallery)})")
        return RetrievalSet(query_features=self.dataset_features[[self.split_positions[i] for i in q_idx]],
                            query_labels=self.real_labels[q_idx],
                            gallery_features=self._features_of(g_img, "Inception features (mAP gallery)"),
                            gallery_labels=np.array([self.records[qi].class_id for qi, _ in gallery]),
                            per_query=self.map_captions)
