"""What the SEN reads from a dataset (cached log-mels, image features) and the embeddings of whole splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from speechvision.core.images import to_unit_range
from speechvision.data.cache import LogMelCache
from speechvision.data.manifest import Dataset, DatasetError, Record
from speechvision.s2igan.config import Config
from speechvision.s2igan.image_features import image_features
from speechvision.s2igan.sen import SEN


@dataclass
class SENInputs:
    """Everything the SEN reads from a dataset: log-mels per audio file and image inputs per record."""

    dataset: Dataset
    logmels: LogMelCache
    image_inputs: torch.Tensor  # (N, 2048) features or (N, 3, H, W) images in [-1, 1]; row = record index
    record_index: dict[str, int]

    @staticmethod
    def load(ds: Dataset, cfg: Config, *, progress: bool = True) -> "SENInputs":
        audio = [c.audio for r in ds.records for c in r.captions if c.audio]
        if not audio:
            raise DatasetError(f"{ds.root}: the dataset has no caption audio; rebuild it without --no-audio")
        logmels = LogMelCache.build(ds.root, audio, cfg.audio, progress=progress)
        images = [r.image for r in ds.records]
        if cfg.sen.image.kind == "inception":
            inputs = torch.from_numpy(image_features(ds.root, images, progress=progress))
        else:
            from speechvision.metrics.features import load_images_uint8

            inputs = torch.from_numpy(load_images_uint8([ds.path(p) for p in images])).permute(0, 3, 1, 2)
            inputs = to_unit_range(inputs)
        return SENInputs(ds, logmels, inputs, {r.id: i for i, r in enumerate(ds.records)})

    def speech_batch(self, audio_paths: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-padded (B, T, F) log-mels and (B,) lengths."""
        feats = [self.logmels.get(p) for p in audio_paths]
        lengths = torch.tensor([len(f) for f in feats])
        batch = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for i, f in enumerate(feats):
            batch[i, :len(f)] = torch.from_numpy(f)
        return batch, lengths

    def images(self, records: list[Record]) -> torch.Tensor:
        return self.image_inputs[[self.record_index[r.id] for r in records]]


@torch.no_grad()
def embed_speech(model: SEN, inputs: SENInputs, audio_paths: list[str], batch_size: int = 256) -> np.ndarray:
    """(N, D) speech embeddings of the given audio files (eval mode)."""
    model.eval()
    out = []
    order = np.argsort([inputs.logmels.length(p) for p in audio_paths])  # similar lengths batch together
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        feats, lengths = inputs.speech_batch([audio_paths[i] for i in idx])
        out.append((idx, model.speech_encoder(feats, lengths).numpy()))
    emb = np.zeros((len(audio_paths), model.speech_encoder.config.embedding_dim), np.float32)
    for idx, e in out:
        emb[idx] = e
    return emb


@torch.no_grad()
def embed_images(model: SEN, inputs: SENInputs, records: list[Record], batch_size: int = 512) -> np.ndarray:
    model.eval()
    x = inputs.images(records)
    return torch.cat([model.image_encoder(x[s:s + batch_size]) for s in range(0, len(x), batch_size)]).numpy()
