"""What the SEN reads from a dataset (cached log-mels, image features) and the embeddings of whole splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from speechvision.core.images import to_unit_range
from speechvision.data.cache import LogMelCache
from speechvision.data.manifest import Dataset, DatasetError, Record
from speechvision.data.speech_augment import copy_for_epoch, load_augment_index
from speechvision.s2igan.augment import augment_views, view_for_epoch
from speechvision.s2igan.config import AugmentConfig, Config, SpeechAugmentConfig
from speechvision.s2igan.image_features import image_features, load_images, view_features
from speechvision.s2igan.sen import SEN
from speechvision.s2igan.speech_encoder import SpeechEncoder


@dataclass
class SENInputs:
    """Everything the SEN reads from a dataset: log-mels per audio file and image inputs per record.

    ``image_inputs``: row = record index; (N, 2048) Inception features or (N, 3, H, W) images in [-1, 1], or,
    with ``augment`` set, the same per view: (N, K, 2048) or (N, K, 3, S, S) (view 0 = the plain image,
    :mod:`speechvision.s2igan.augment`).
    """

    dataset: Dataset
    logmels: LogMelCache
    image_inputs: torch.Tensor | None  # None: loaded with images=False (speech only)
    record_index: dict[str, int]
    augment: AugmentConfig | None = None
    speech_copies: dict[str, list[str]] | None = None  # train audio -> augmented copies (data.speech_augment)
    speech_augment: SpeechAugmentConfig | None = None
    _epoch_views: tuple[int, torch.Tensor] | None = field(default=None, init=False, repr=False)

    @staticmethod
    def load(ds: Dataset, cfg: Config, *, progress: bool = True, views: bool = False,
             images: bool = True) -> SENInputs:
        """Log-mels of every caption and the image inputs of every record (cached on disk). ``views``: also
        the augmented views of ``cfg.data.augment`` when it is enabled (for training; evaluation and
        retrieval read view 0 only, so they leave it False and compute no views). ``images=False``: speech
        only (``image_inputs`` None; for the speech-encoder distillation, which reads no image)."""
        audio = [c.audio for r in ds.records for c in r.captions if c.audio]
        if not audio:
            raise DatasetError(f"{ds.root}: the dataset has no caption audio; rebuild it without --no-audio")
        sa = cfg.data.speech_augment if views and cfg.data.speech_augment.enabled else None
        copies = load_augment_index(ds.root, sa.copies) if sa is not None else None
        extra = [c for cs in copies.values() for c in cs] if copies else []
        logmels = LogMelCache.build(ds.root, audio + extra, cfg.audio, progress=progress)
        index = {r.id: i for i, r in enumerate(ds.records)}
        if not images:
            return SENInputs(ds, logmels, None, index, None, copies, sa)
        images = [r.image for r in ds.records]
        aug = cfg.data.augment if views and cfg.data.augment.enabled else None
        if cfg.sen.image.kind == "inception" and aug is not None:
            inputs = torch.from_numpy(view_features(ds.root, images, aug, cfg.data.image_size_px, progress=progress))
        elif cfg.sen.image.kind == "inception":
            inputs = torch.from_numpy(image_features(ds.root, images, progress=progress))
        elif aug is not None:
            files = load_images([ds.path(p) for p in images])
            inputs = to_unit_range(augment_views([torch.from_numpy(im).permute(2, 0, 1) for im in files], aug,
                                                 cfg.data.image_size_px))
        else:
            from speechvision.metrics.features import load_images_uint8

            inputs = torch.from_numpy(load_images_uint8([ds.path(p) for p in images])).permute(0, 3, 1, 2)
            inputs = to_unit_range(inputs)
        return SENInputs(ds, logmels, inputs, index, aug, copies, sa)

    def views_of_epoch(self, epoch: int) -> torch.Tensor:
        """(N,) the view each record's image shows in training ``epoch`` (seeded with ``augment.seed``)."""
        if self._epoch_views is None or self._epoch_views[0] != epoch:
            n, k = self.image_inputs.shape[:2]
            self._epoch_views = (epoch, view_for_epoch(self.augment.seed, epoch, n, k))
        return self._epoch_views[1]

    def speech_batch(self, audio_paths: list[str], epoch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-padded (B, T, F) log-mels and (B,) lengths; with ``data.speech_augment`` and a training
        ``epoch``, each train file's version of that epoch
        (:func:`~speechvision.data.speech_augment.copy_for_epoch`)."""
        if epoch is not None and self.speech_copies:
            sa = self.speech_augment
            audio_paths = [p if p not in self.speech_copies else
                           ([p] + self.speech_copies[p])[copy_for_epoch(sa.seed, epoch, p, sa.copies, sa.p_clean)]
                           for p in audio_paths]
        feats = [self.logmels.get(p) for p in audio_paths]
        lengths = torch.tensor([len(f) for f in feats])
        batch = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for i, f in enumerate(feats):
            batch[i, :len(f)] = torch.from_numpy(f)
        return batch, lengths

    def images(self, records: list[Record], epoch: int | None = None) -> torch.Tensor:
        """(B, 2048) features or (B, 3, H, W) images of ``records``: with augmentation, each record's view of
        training ``epoch`` (:meth:`views_of_epoch`), or view 0 (the plain image) when ``epoch`` is None."""
        rows = [self.record_index[r.id] for r in records]
        if self.augment is None:
            return self.image_inputs[rows]
        view = self.views_of_epoch(epoch)[rows] if epoch is not None else torch.zeros(len(rows), dtype=torch.long)
        return self.image_inputs[torch.tensor(rows, dtype=torch.long), view]


@torch.no_grad()
def embed_speech(model: SEN, inputs: SENInputs, audio_paths: list[str], batch_size: int = 256) -> np.ndarray:
    """(N, D) speech embeddings of the given audio files by the SEN's speech encoder (eval mode)."""
    model.eval()
    return embed_audio(model.speech_encoder, inputs, audio_paths, batch_size)


@torch.no_grad()
def embed_audio(encoder: SpeechEncoder, inputs: SENInputs, audio_paths: list[str],
                batch_size: int = 256) -> np.ndarray:
    """(N, D) embeddings of the given audio files (their clean cached log-mels) by ``encoder``; leaves its
    train/eval mode to the caller."""
    out = []
    order = np.argsort([inputs.logmels.length(p) for p in audio_paths])  # similar lengths batch together
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        feats, lengths = inputs.speech_batch([audio_paths[i] for i in idx])
        out.append((idx, encoder(feats, lengths).numpy()))
    emb = np.zeros((len(audio_paths), encoder.config.embedding_dim), np.float32)
    for idx, e in out:
        emb[idx] = e
    return emb


@torch.no_grad()
def embed_images(model: SEN, inputs: SENInputs, records: list[Record], batch_size: int = 512) -> np.ndarray:
    model.eval()
    x = inputs.images(records)
    return torch.cat([model.image_encoder(x[s:s + batch_size]) for s in range(0, len(x), batch_size)]).numpy()
