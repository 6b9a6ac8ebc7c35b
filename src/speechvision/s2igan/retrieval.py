"""SEN retrieval: the k nearest images of a dataset split for a spoken query."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speechvision.core.audio import AudioChecks
from speechvision.data.manifest import Dataset, DatasetError, Record, load_dataset
from speechvision.metrics.retrieval import cosine_scores
from speechvision.s2igan.pipeline import embed_wavs
from speechvision.s2igan.sen import load_sen
from speechvision.s2igan.sen_data import SENInputs, embed_images


class RetrievalIndex:
    """A SEN and the embeddings of one split's images, built once and queried many times (the server)."""

    def __init__(self, checkpoint: str | Path, data: str | Path, *, split: str = "test", progress: bool = False):
        """Raises: DatasetError (bad dataset or empty split), CheckpointError (bad SEN checkpoint)."""
        self.model, self.config, _ = load_sen(checkpoint)
        self.dataset: Dataset = load_dataset(data)
        self.records = self.dataset.split(split)
        if not self.records:
            raise DatasetError(f"{self.dataset.root}: split '{split}' is empty")
        inputs = SENInputs.load(self.dataset, self.config, progress=progress)
        self.image_embeddings = embed_images(self.model, inputs, self.records)  # (N, E)

    def query(self, speech: str | Path, k: int = 5, checks: AudioChecks = AudioChecks()) -> list[tuple[float, Record]]:
        """Top ``k`` (cosine score, record) for a spoken query. Raises AudioError for bad audio."""
        q = embed_wavs(self.model.speech_encoder, [speech], self.config.audio, checks).numpy()
        scores = cosine_scores(q, self.image_embeddings)[0]
        top = np.argsort(-scores, kind="stable")[:k]
        return [(float(scores[i]), self.records[i]) for i in top]


def retrieve(checkpoint: str | Path, speech: str | Path, data: str | Path, *, split: str = "test", k: int = 5,
             checks: AudioChecks = AudioChecks()) -> list[tuple[float, Record]]:
    """Rank the images of ``split`` by cosine similarity to the spoken query; the top ``k`` as (score, record).

    Raises:
        AudioError: bad query audio. DatasetError: bad dataset or empty split. CheckpointError: bad checkpoint.
    """
    return RetrievalIndex(checkpoint, data, split=split).query(speech, k, checks)
