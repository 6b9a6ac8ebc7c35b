"""``speechvision evaluate sen``: speech->image retrieval of a SEN checkpoint (mAP, R@k, median rank) per split,
and for the held-out voices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechvision.core.atomic import atomic_write_text
from speechvision.data.manifest import Record, load_dataset
from speechvision.metrics import PairedEmbeddings, compute_metrics
from speechvision.s2igan.sen import SEN, load_sen
from speechvision.s2igan.sen_data import SENInputs, embed_images, embed_speech


def pick_caption(record: Record, heldout: set[str] | None = None):
    """Caption 0 (the paper's test caption); with ``heldout``, the first caption spoken by a held-out voice."""
    if heldout is None:
        return record.captions[0]
    return next((c for c in record.captions if c.voice in heldout), None)


def evaluate_split(model: SEN, inputs: SENInputs, split: str, *, heldout_voices: bool = False) -> dict:
    """Retrieval metrics for one split (the registered ``sen`` metric): speech queries (caption 0, or
    held-out voices) vs its images -> ``{"mAP", "class_R@k", "s2i_R@k", "i2s_R@k", "*_median_rank",
    "queries"}``; ``{"queries": 0}`` when no record has such a caption with audio."""
    records = inputs.dataset.split(split)
    heldout = inputs.dataset.heldout_voices if heldout_voices else None
    pairs = [(r, c) for r in records if (c := pick_caption(r, heldout)) is not None and c.audio]
    if not pairs:
        return {"queries": 0}
    recs = [r for r, _ in pairs]
    speech = embed_speech(model, inputs, [c.audio for _, c in pairs])
    image = embed_images(model, inputs, recs)
    return compute_metrics(["sen"], PairedEmbeddings(speech, image, np.array([r.class_id for r in recs])))["sen"]


def evaluate_sen(checkpoint: str | Path, data: str | Path, splits=("test", "test_unseen"), *,
                 progress: bool = True, out: str | Path | None = None) -> dict:
    """Retrieval metrics of a SEN checkpoint on each split, plus held-out voices where the dataset has them;
    with ``out``, also written there as indented JSON (atomically).

    Returns ``{"checkpoint", "epoch", split: metrics, "<split>/heldout_voices": metrics}`` (empty splits skipped).

    Raises:
        CheckpointError: an unusable SEN checkpoint. DatasetError: an unreadable dataset.
    """
    model, cfg, ckpt = load_sen(checkpoint)
    ds = load_dataset(data)
    inputs = SENInputs.load(ds, cfg, progress=progress)
    results = {"checkpoint": ckpt["path"], "epoch": ckpt["epoch"]}
    for split in splits:
        if not ds.split(split):
            continue
        results[split] = evaluate_split(model, inputs, split)
        if ds.heldout_voices:
            results[f"{split}/heldout_voices"] = evaluate_split(model, inputs, split, heldout_voices=True)
    if out is not None:
        atomic_write_text(out, json.dumps(results, indent=2))
    return results
