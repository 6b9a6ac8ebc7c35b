"""Evaluation of the main job.

* :func:`evaluate`: the paper's protocol (``speechvision evaluate``): FID, Inception Score, mAP/R@k
  and semantic accuracy of generated images, with real-data baselines, ``metrics.json``, a real vs
  generated grid and a Table-1 style Markdown table. It builds one
  :class:`~speechvision.s2igan.eval_context.EvaluationContext` (the dataset split, the generator,
  the judging models; every input computed lazily, once) and runs the requested names of the
  metric registry (:data:`speechvision.metrics.REGISTRY`) over it; no metric is special-cased here.
* :func:`evaluate_folders`: FID (and IS) of two image folders, like pytorch-fid.
* :func:`evaluate_generator` (``speechvision evaluate gan``): semantic accuracy on spoken-fashion per
  split and voice group, and the colour-keyword swap. For every image of a split, its caption 0 (or,
  for held-out voices, its first caption spoken by a held-out voice) is turned into one image
  (seed = the record's position); domain classifiers trained on real images judge garment and colour.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from speechvision.core.cleanup import Cleanup
from speechvision.core.errors import InputError
from speechvision.core.tts import DEFAULT_VOICE, SynthesisJob, synthesize_many
from speechvision.data.captions import COLOURS, FASHION_CLASSES, caption
from speechvision.data.manifest import Dataset, DatasetError, load_dataset
from speechvision.metrics import GENERATOR_METRICS, REGISTRY, check_metric_names, compute_metrics
from speechvision.metrics.semantic import attribute_accuracy, keyword_follow_rate
from speechvision.s2igan.classifier import AttributeClassifier, load_classifier, predict
from speechvision.s2igan.eval_context import EvaluationContext
from speechvision.s2igan.pipeline import S2IGANPipeline


def semantic_accuracy(pipe: S2IGANPipeline, classifier, ds: Dataset, split: str, *,
                      heldout_voices: bool = False, limit: int | None = None) -> dict:
    """Attribute accuracy of images generated from caption 0 of each record of ``split`` (or, with
    ``heldout_voices``, its first caption by a held-out voice), seed = position; at most ``limit``
    images. Returns :func:`~speechvision.metrics.semantic.attribute_accuracy`'s dict, or
    ``{"images": 0}`` when no record has such a caption."""
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


def colour_swap(pipe: S2IGANPipeline, classifier, work_dir: Path, *, seeds: int = 1, degraded: bool = False) -> dict:
    """Speak each sentence of :data:`SWAP_SENTENCES` with only the colour word changed (default Piper
    voice), generate, and check the image's colour (and that the garment stays). ``degraded``: each recording
    first goes through :func:`speechvision.data.degrade.degrade` (seeded by its file name; 8 simulated rooms)."""
    jobs, items = [], []
    for t, g, syn in SWAP_SENTENCES:
        for c, colour in enumerate(COLOURS):
            text = caption(t, g, syn, colour)
            wav = work_dir / f"swap-{t}-{g.replace(' ', '_')}-{colour}.wav"
            jobs.append(SynthesisJob(text, DEFAULT_VOICE, str(wav)))
            items.append((FASHION_CLASSES.index(g), c, wav))
    synthesize_many(jobs, progress=False)
    if degraded:
        items = degraded_copies(items, work_dir / "degraded")
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


def degraded_copies(items: list[tuple[int, int, Path]], folder: Path) -> list[tuple[int, int, Path]]:
    """The (garment, colour, wav) ``items`` with each recording replaced by ``folder/<name>``: it through the
    seeded degradation chain (seed: its file name; one chain over 8 simulated rooms; files written once)."""
    import zlib

    from speechvision.core.audio import load_audio
    from speechvision.core.tts import write_wav_atomic
    from speechvision.data.degrade import DegradeConfig, build_chain, degrade, make_rirs

    chain = build_chain(DegradeConfig(), rirs=make_rirs(folder / "rirs", 8))
    out = []
    for g, c, wav in items:
        copy = folder / wav.name
        if not copy.is_file():
            write_wav_atomic(copy, degrade(load_audio(wav), 22050, zlib.crc32(wav.name.encode()), chain), 22050)
        out.append((g, c, copy))
    return out


def evaluate_generator(checkpoint: str | Path | None, data: str | Path, classifier_path: str | Path, *,
                       splits=("test", "test_unseen"), limit: int | None = None, work_dir: Path | None = None,
                       cleanup: Cleanup = Cleanup(), cascade: bool = False) -> dict:
    """All spoken-fashion targets of the generator issue in one report: semantic accuracy per split (and its
    held-out voices) and the colour-keyword swap, through the direct model (its inputs cleaned by ``cleanup``)
    or, with ``cascade``, through the cascade baseline (:mod:`speechvision.s2igan.cascade`)."""
    ds = load_dataset(data)
    if "colour" not in ds.meta.get("attributes", {}):
        raise DatasetError(f"{ds.root}: semantic accuracy needs a dataset with garment/colour attributes")
    unknown = [s for s in splits if not ds.split(s)]
    if unknown:
        raise DatasetError(f"{ds.root}: no split {unknown[0]!r} (this dataset has {', '.join(ds.meta['splits'])})")
    pipe = S2IGANPipeline.load(checkpoint, cleanup=cleanup)
    if cascade:
        from speechvision.s2igan.cascade import CascadePipeline

        pipe = CascadePipeline(pipe)
    classifier, ck = load_classifier(classifier_path)
    report = {"checkpoint": str(checkpoint or "bundled"), "cascade": cascade, "cleanup": cleanup.enabled,
              "classifier_real_test": ck["test"]}
    t0 = time.time()
    for split in splits:
        report[split] = semantic_accuracy(pipe, classifier, ds, split, limit=limit)
        report[f"{split}/heldout_voices"] = semantic_accuracy(pipe, classifier, ds, split, heldout_voices=True,
                                                              limit=limit)
    work_dir = Path(work_dir or Path(data) / "cache" / "colour-swap")
    work_dir.mkdir(parents=True, exist_ok=True)
    report["colour_swap"] = colour_swap(pipe, classifier, work_dir)
    report["colour_swap_degraded"] = colour_swap(pipe, classifier, work_dir, degraded=True)
    report["seconds"] = round(time.time() - t0, 1)
    return report


def write_report(report: dict, out: str | Path | None) -> str:
    """``report`` as indented JSON, also written to ``out`` when given; returns the text."""
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text)
    return text


# ---------------------------------------------------------------------------------------------
# The paper's protocol: FID, IS, mAP, semantic accuracy (``speechvision evaluate``)
# ---------------------------------------------------------------------------------------------

PAPER_TABLE1 = [  # S2IGAN Table 1: (method, CUB mAP, FID, IS, Oxford mAP, FID, IS)
    ("S2IGAN", 9.04, 14.50, "4.29", 13.40, 48.64, "3.55±0.04"),
    ("w/o dense", 8.66, 17.58, "4.19", 13.13, 64.37, "3.68"),
    ("w/o RS", 8.54, 15.59, "4.14", 12.86, 53.24, "3.70"),
    ("w/o SEN", 2.91, 19.56, "3.49", 7.38, 67.60, "2.77"),
    ("end-to-end", 7.38, 21.54, "4.29", 12.47, 51.88, "3.55"),
    ("SEN w/o distinctive", 6.80, 16.66, "4.19", 10.03, 69.47, "3.35"),
]


def save_class_grid(real: np.ndarray, fake: np.ndarray, real_labels: np.ndarray, fake_labels: np.ndarray,
                    names: dict[int, str], path: Path, *, classes: int = 12, per_class: int = 4) -> None:
    """Rows = classes; column 0 the real image, then ``per_class`` generated ones (uint8 (N, H, W, 3))."""
    from PIL import Image, ImageDraw

    size = fake.shape[1]
    present = [c for c in sorted(set(real_labels.tolist())) if (fake_labels == c).any()]
    rows = np.linspace(0, len(present) - 1, min(classes, len(present))).round().astype(int)
    chosen = [present[i] for i in sorted(set(rows))]
    label_w = 130
    grid = Image.new("RGB", (label_w + size * (1 + per_class) + 6, size * len(chosen)), "white")
    draw = ImageDraw.Draw(grid)
    for row, c in enumerate(chosen):
        draw.text((4, row * size + size // 2 - 6), names.get(c, str(c))[:20], fill="black")
        r = Image.fromarray(real[np.flatnonzero(real_labels == c)[0]]).resize((size, size))
        grid.paste(r, (label_w, row * size))
        for j, i in enumerate(np.flatnonzero(fake_labels == c)[:per_class]):
            grid.paste(Image.fromarray(fake[i]), (label_w + 6 + size * (1 + j), row * size))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def evaluate(checkpoint: str | Path | None, data: str | Path, *, split: str = "test",
             metrics=GENERATOR_METRICS, out: str | Path | None = None, captions_per_image: int = 1,
             map_captions: int = 10, classifier: str | Path | None = None, classifier_head: str | None = None,
             inception_weights: str | Path | None = None, seed: int = 0, limit: int | None = None,
             batch_size: int = 64, save_images: bool = False, is_model: str = "classifier",
             progress: bool = True, cleanup: Cleanup = Cleanup()) -> dict:
    """Evaluate a generator on a dataset split with the S2IGAN protocol (Sec. 3.2); see
    :mod:`speechvision.metrics` for each metric's protocol.

    Builds one :class:`~speechvision.s2igan.eval_context.EvaluationContext` and runs the
    registered metrics ``metrics`` over it, in the order given (their entries in the report's
    ``metrics`` follow that order). Generated set: for every record of ``split`` (at most
    ``limit``), its first ``captions_per_image`` captions, one image each (seed = ``seed`` +
    position). FID compares it with the split's real images; IS and semantic accuracy judge it with
    the domain classifier. mAP uses 2 real images per class as queries and a gallery generated from
    their first ``map_captions`` captions. ``is_model="inception"`` takes the IS posteriors from the
    ImageNet Inception's 1008 classes instead of the domain classifier (the paper's Flickr8k/Places
    setting; needs pytorch-fid's weights file, which holds the classifier layer, as
    ``inception_weights``). Baselines on real data: FID(real split, real train subsample of the same
    size), IS and classifier accuracy of the real split. With ``out``: ``metrics.json``,
    ``table.md``, ``grid.png`` and (``save_images``) ``generated/*.png`` (:func:`write_outputs`).

    Raises:
        ValueError: an unknown metric name (one line), or an unknown ``is_model``.
        DatasetError: a missing split, or metrics that need a classifier without one.
        CheckpointError / WeightsError: unusable checkpoint or Inception weights.
    """
    from speechvision import __version__

    names = check_metric_names(metrics)
    ctx = EvaluationContext.open(checkpoint, data, names, split=split, limit=limit, classifier_path=classifier,
                                 is_model=is_model, seed=seed, captions_per_image=captions_per_image,
                                 map_captions=map_captions, classifier_head=classifier_head,
                                 inception_weights=inception_weights, batch_size=batch_size, progress=progress,
                                 cleanup=cleanup)
    report: dict = {"speechvision": __version__, "checkpoint": str(checkpoint or "bundled"), "data": str(ctx.ds.root),
                    "split": split, "seed": seed, "captions_per_image": captions_per_image,
                    "cleanup": cleanup.enabled,
                    "feature_extractor": ctx.feature_params, "metrics": {},
                    "protocol": {m: REGISTRY[m].protocol for m in names}}
    report["metrics"] = compute_metrics(names, ctx)
    if ctx.generated:
        report["generated_images"] = int(len(ctx.fake_images))
        report["generated_px"] = int(ctx.fake_images.shape[1])
    report["timing"] = ctx.timing
    if out is not None:
        write_outputs(ctx, report, out, save_images=save_images)
    return report


def write_outputs(ctx: EvaluationContext, report: dict, out: str | Path, *, save_images: bool = False) -> None:
    """``out/metrics.json``, ``out/table.md`` (Table-1 layout) and, when images were generated,
    ``out/grid.png`` (real vs generated per class) and (``save_images``) ``out/generated/<id>-<caption>.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    method = Path(report["checkpoint"]).name
    (out / "table.md").write_text(table1_markdown([(method, ctx.ds.meta.get("name", ctx.ds.root.name), report)]))
    if not ctx.generated:
        return
    names = {r.class_id: r.class_name for r in ctx.records}
    save_class_grid(ctx.real_images, ctx.fake_images, ctx.real_labels, ctx.fake_labels, names, out / "grid.png")
    if save_images:
        from PIL import Image

        (out / "generated").mkdir(exist_ok=True)
        for (ri, c), img in zip(ctx.items, ctx.fake_images):
            record = ctx.records[ri]
            Image.fromarray(img).save(out / "generated" / f"{record.id}-{record.captions.index(c)}.png")


def _fmt(x, spec=".2f") -> str:
    return "–" if x is None else format(x, spec)


def table1_markdown(rows: list[tuple[str, str, dict]], *, with_paper: bool = True) -> str:
    """Rows of (method, dataset, report) -> a Markdown table in the layout of S2IGAN Table 1
    (mAP in %, FID, IS mean±std), followed by the real-data baselines of each report."""
    lines = ["| method | dataset | mAP (%) | FID | IS |", "|---|---|---|---|---|"]
    if with_paper:
        for name, cm, cf, ci, om, of, oi in PAPER_TABLE1:
            lines.append(f"| {name} (paper) | CUB | {cm:.2f} | {cf:.2f} | {ci} |")
            lines.append(f"| {name} (paper) | Oxford-102 | {om:.2f} | {of:.2f} | {oi} |")
    for method, dataset, rep in rows:
        m = rep["metrics"]
        mp = m.get("map", {}).get("mAP")
        fid = m.get("fid", {}).get("value")
        is_ = m.get("is")
        is_txt = f"{is_['mean']:.2f}±{is_['std']:.2f}" if is_ else "–"
        lines.append(f"| {method} | {dataset} | {_fmt(None if mp is None else 100 * mp)} | {_fmt(fid)} | {is_txt} |")
        base_fid = m.get("fid_real_train_baseline", {}).get("value")
        is_real = m.get("is_real")
        if base_fid is not None or is_real:
            is_real_txt = f"{is_real['mean']:.2f}±{is_real['std']:.2f}" if is_real else "–"
            lines.append(f"| real images ({rep['split']} vs train) | {dataset} | – | {_fmt(base_fid)} "
                         f"| {is_real_txt} |")
    return "\n".join(lines) + "\n"


def evaluate_folders(real: str | Path, fake: str | Path, *, classifier: str | Path | None = None,
                     classifier_head: str | None = None, inception_weights: str | Path | None = None,
                     batch_size: int = 32, progress: bool = True, out: str | Path | None = None) -> dict:
    """FID between two image folders (any sizes; each image resized to 299 bilinearly), and the IS of
    the ``fake`` folder when a classifier is given; with ``out``, also written to ``out/metrics.json``.

    Returns ``{"real", "fake", "real_images", "fake_images", "fid"}`` (+ ``"is": {"mean", "std", "head"}``).

    Raises:
        ImageFolderError: a missing folder, one with fewer than 2 images (before any Inception pass), or an
            unreadable image (named).
    """
    from speechvision.core.inception import InceptionFeatures
    from speechvision.metrics.features import image_files, inception_features, load_images_uint8
    from speechvision.metrics.fid import fid_from_features

    files = {name: image_files(folder, 2, "FID (a covariance)") for name, folder in (("real", real), ("fake", fake))}
    judge = load_classifier(classifier)[0] if classifier is not None else None  # before the Inception pass
    if judge is not None:
        classifier_head = checked_head(judge, classifier_head)
    model = InceptionFeatures(inception_weights)
    feats = {}
    for name, fs in files.items():
        feats[name] = inception_features(lambda a, b, fs=fs: load_images_uint8(fs[a:b], same_size=False), len(fs),
                                         model=model, batch_size=batch_size, progress=progress,
                                         desc=f"Inception features ({name})")
    report = {"real": str(real), "fake": str(fake), "real_images": len(files["real"]),
              "fake_images": len(files["fake"]), "fid": fid_from_features(feats["real"], feats["fake"])}
    if judge is not None:
        report["is"] = folder_inception_score(judge, files["fake"], head=classifier_head)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def checked_head(model: AttributeClassifier, head: str | None) -> str:
    """:func:`~speechvision.s2igan.classifier.select_head`, its error an :class:`InputError` naming the option.

    Raises:
        InputError: the classifier has no head ``head`` (the message lists its heads).
    """
    from speechvision.s2igan.classifier import select_head

    try:
        return select_head(model, head)
    except ValueError as e:
        raise InputError(f"--classifier-head: {e}") from None


def folder_inception_score(model: AttributeClassifier, files: list[Path], *, head: str | None = None) -> dict:
    """IS of image files of any sizes over a classifier head (default the first): each image resized to the
    classifier's size alone (bilinear, antialias) -> ``{"mean", "std", "head"}`` over min(10, N) splits.

    Raises:
        ValueError: the classifier has no head ``head``.
    """
    import torch

    from speechvision.metrics.features import load_images_uint8
    from speechvision.metrics.inception_score import inception_score
    from speechvision.s2igan.classifier import classifier_input, probabilities, resize_images, select_head

    head = select_head(model, head)
    imgs = [resize_images(classifier_input(im[None]), model.config.size_px)
            for im in load_images_uint8(files, same_size=False)]
    m, s = inception_score(probabilities(model, torch.cat(imgs))[head], min(10, len(imgs)))
    return {"mean": m, "std": s, "head": head}
