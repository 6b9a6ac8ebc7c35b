"""SEN retrieval: the k nearest images of a dataset split for a spoken query."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio import AudioChecks
from .data.manifest import DatasetError, Record, load_dataset
from .generate import embed_wavs
from .metrics.retrieval import cosine_scores
from .training.sen import SENInputs, embed_images, load_sen


def retrieve(checkpoint: str | Path, speech: str | Path, data: str | Path, *, split: str = "test", k: int = 5,
             checks: AudioChecks = AudioChecks()) -> list[tuple[float, Record]]:
    """Rank the images of ``split`` by cosine similarity to the spoken query; the top ``k`` as (score, record).

    Raises:
        AudioError: bad query audio. DatasetError: bad dataset or empty split. CheckpointError: bad checkpoint.
    """
    model, cfg, _ = load_sen(checkpoint)
    query = embed_wavs(model.speech_encoder, [speech], cfg.audio, checks).numpy()
    ds = load_dataset(data)
    records = ds.split(split)
    if not records:
        raise DatasetError(f"{ds.root}: split '{split}' is empty")
    inputs = SENInputs.load(ds, cfg, progress=False)
    scores = cosine_scores(query, embed_images(model, inputs, records))[0]
    top = np.argsort(-scores, kind="stable")[:k]
    return [(float(scores[i]), records[i]) for i in top]
