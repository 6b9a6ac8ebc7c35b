"""Evaluation of the main job on spoken-fashion: semantic accuracy and the colour-keyword swap.

For every image of a split, its caption 0 (or, for held-out voices, its first caption spoken by a
held-out voice) is turned into one image (seed = the record's position); domain classifiers trained
on real images judge garment and colour.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .data.captions import COLOURS, FASHION_CLASSES, caption
from .data.manifest import Dataset, DatasetError, load_dataset
from .generate import S2IGANPipeline
from .metrics.semantic import attribute_accuracy, keyword_follow_rate
from .training.classifier import load_classifier, predict
from .tts import DEFAULT_VOICE, SynthesisJob, synthesize_many


def semantic_accuracy(pipe: S2IGANPipeline, classifier, ds: Dataset, split: str, *,
                      heldout_voices: bool = False, limit: int | None = None) -> dict:
    vocab = ds.meta["attributes"]
    heldout = ds.heldout_voices
    pairs = []
    for r in ds.split(split):
        cap = next((c for c in r.captions if c.voice in heldout), None) if heldout_voices else r.captions[0]
        if cap is not None and cap.audio:
            pairs.append((r, ds.path(cap.audio)))
    pairs = pairs[:limit] if limit else pairs
    if not pairs:
        return {"images": 0}
    images = pipe.speech_to_images([w for _, w in pairs])[-1]
    pred = predict(classifier, images)
    truth = {k: np.array([vocab[k].index(r.attributes[k]) for r, _ in pairs]) for k in pred}
    return attribute_accuracy(pred, truth)


# Colour-keyword experiment: sentences (template, garment, synonym) spoken with every colour word.
SWAP_SENTENCES = [(t, g, 0) for g in FASHION_CLASSES for t in (0, 1)]


def colour_swap(pipe: S2IGANPipeline, classifier, work_dir: Path, *, seeds: int = 1) -> dict:
    """Speak each sentence of :data:`SWAP_SENTENCES` with only the colour word changed (default Piper
    voice), generate, and check the image's colour (and that the garment stays)."""
    jobs, items = [], []
    for t, g, syn in SWAP_SENTENCES:
        for c, colour in enumerate(COLOURS):
            text = caption(t, g, syn, colour)
            wav = work_dir / f"swap-{t}-{g.replace(' ', '_')}-{colour}.wav"
            jobs.append(SynthesisJob(text, DEFAULT_VOICE, str(wav)))
            items.append((FASHION_CLASSES.index(g), c, wav))
    synthesize_many(jobs, progress=False)
    pred_c, pred_g, want_c, want_g = [], [], [], []
    for s in range(seeds):
        images = pipe.speech_to_images([w for *_, w in items], seed=1000 * s)[-1]
        pred = predict(classifier, images)
        pred_c.append(pred["colour"])
        pred_g.append(pred["garment"])
        want_c.append(np.array([c for _, c, _ in items]))
        want_g.append(np.array([g for g, _, _ in items]))
    pc, wc = np.concatenate(pred_c), np.concatenate(want_c)
    return {"colour_follows_word": keyword_follow_rate(pc, wc),
            "garment_accuracy": float(np.mean(np.concatenate(pred_g) == np.concatenate(want_g))),
            "sentences": len(SWAP_SENTENCES), "colours": len(COLOURS), "images": int(len(pc))}


def evaluate_generator(checkpoint: str | Path | None, data: str | Path, classifier_path: str | Path, *,
                       splits=("test", "test_unseen"), limit: int | None = None, work_dir: Path | None = None) -> dict:
    """All spoken-fashion targets of the generator issue in one report."""
    ds = load_dataset(data)
    if "colour" not in ds.meta.get("attributes", {}):
        raise DatasetError(f"{ds.root}: semantic accuracy needs a dataset with garment/colour attributes")
    pipe = S2IGANPipeline.load(checkpoint)
    classifier, ck = load_classifier(classifier_path)
    report = {"checkpoint": str(checkpoint or "bundled"), "classifier_real_test": ck["test"]}
    t0 = time.time()
    for split in splits:
        report[split] = semantic_accuracy(pipe, classifier, ds, split, limit=limit)
        report[f"{split}/heldout_voices"] = semantic_accuracy(pipe, classifier, ds, split, heldout_voices=True,
                                                              limit=limit)
    work_dir = Path(work_dir or Path(data) / "cache" / "colour-swap")
    work_dir.mkdir(parents=True, exist_ok=True)
    report["colour_swap"] = colour_swap(pipe, classifier, work_dir)
    report["seconds"] = round(time.time() - t0, 1)
    return report


def write_report(report: dict, out: str | Path | None) -> str:
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text)
    return text
