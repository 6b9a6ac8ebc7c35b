"""Evaluation of the main job.

* :func:`evaluate`: the paper's protocol (``speechvision evaluate``): FID, Inception Score, mAP/R@k
  and semantic accuracy of generated images, with real-data baselines, ``metrics.json``, a real vs
  generated grid and a Table-1 style Markdown table.
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

from speechvision.core.inception import WeightsError
from speechvision.core.tts import DEFAULT_VOICE, SynthesisJob, synthesize_many
from speechvision.data.captions import COLOURS, FASHION_CLASSES, caption
from speechvision.data.manifest import Dataset, DatasetError, load_dataset
from speechvision.metrics.semantic import attribute_accuracy, keyword_follow_rate
from speechvision.s2igan.pipeline import S2IGANPipeline
from speechvision.s2igan.train_classifier import load_classifier, predict


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


def _generate_uint8(pipe: S2IGANPipeline, wavs: list[Path], *, seed: int, batch_size: int, progress: bool,
                    desc: str) -> np.ndarray:
    """One final-stage image per wav, image ``i`` with seed ``seed + i`` -> (N, H, W, 3) uint8."""
    from tqdm import tqdm

    from speechvision.core.images import to_uint8

    out = []
    for s in tqdm(range(0, len(wavs), batch_size), desc=desc, unit="batch", disable=not progress):
        out.append(to_uint8(pipe.speech_to_images(wavs[s:s + batch_size], seed=seed + s)[-1]))
    return np.concatenate(out)


def _classifier_head(classifier, head: str | None) -> str:
    heads = list(classifier.config.heads)
    if head is None:
        return heads[0]
    if head not in heads:
        raise ValueError(f"classifier has no head {head!r}; it has {', '.join(heads)}")
    return head


def _float_images(images_uint8: np.ndarray):
    import torch

    return torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def real_statistics(ds: Dataset, split: str, features: np.ndarray, positions: list[int], params: dict):
    """FID statistics of a split's real images, cached as ``cache/fid-stats-<split>-<key>.safetensors``
    (key: the split's image files and the feature extractor)."""
    from speechvision.data.cache import content_key
    from speechvision.metrics.fid import Statistics, feature_statistics

    key = content_key([ds.path(ds.records[i].image) for i in positions], {"kind": "fid-stats", **params})
    path = ds.root / "cache" / f"fid-stats-{split}-{key}.safetensors"
    if path.is_file():
        return Statistics.load(path)
    stats = feature_statistics(features[positions])
    stats.save(path)
    return stats


def save_class_grid(real: np.ndarray, fake: np.ndarray, real_labels: np.ndarray, fake_labels: np.ndarray,
                    names: dict[int, str], path: Path, *, classes: int = 12, per_class: int = 4) -> None:
    """Rows = classes; column 0 the real image, then ``per_class`` generated ones (uint8 (N, H, W, 3))."""
    from PIL import Image, ImageDraw

    size = fake.shape[1]
    present = [c for c in sorted(set(real_labels.tolist())) if (fake_labels == c).any()]
    chosen = [present[i] for i in sorted(set(np.linspace(0, len(present) - 1, min(classes, len(present))).round().astype(int)))]
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
             metrics=("fid", "is", "map", "semantic"), out: str | Path | None = None, captions_per_image: int = 1,
             map_captions: int = 10, classifier: str | Path | None = None, classifier_head: str | None = None,
             inception_weights: str | Path | None = None, seed: int = 0, limit: int | None = None,
             batch_size: int = 64, save_images: bool = False, is_model: str = "classifier",
             progress: bool = True) -> dict:
    """Evaluate a generator on a dataset split with the S2IGAN protocol (Sec. 3.2); see
    :mod:`speechvision.metrics` for each metric's protocol.

    Generated set: for every record of ``split`` (at most ``limit``), its first
    ``captions_per_image`` captions, one image each (seed = ``seed`` + position). FID compares it
    with the split's real images; IS and semantic accuracy judge it with the domain classifier.
    mAP uses 2 real images per class as queries and a gallery generated from their first
    ``map_captions`` captions. ``save_images`` writes the generated set as PNGs to
    ``out/generated/`` (for ``evaluate --real/--fake`` or other tools). ``is_model="inception"``
    takes the IS posteriors from the ImageNet Inception's 1008 classes instead of the domain
    classifier (the paper's Flickr8k/Places setting; needs pytorch-fid's weights file, which holds
    the classifier layer, as ``inception_weights``). Baselines on real data: FID(real split, real train subsample of the
    same size), IS and classifier accuracy of the real split.

    Raises:
        DatasetError: a missing split, or metrics that need a classifier without one.
        CheckpointError / WeightsError: unusable checkpoint or Inception weights.
    """
    from speechvision import __version__
    from speechvision.core.inception import InceptionFeatures
    from speechvision.metrics import REGISTRY
    from speechvision.metrics.features import inception_features, load_images_uint8
    from speechvision.metrics.fid import feature_statistics, frechet_distance
    from speechvision.metrics.generation_map import generation_map, select_queries
    from speechvision.metrics.inception_score import inception_score
    from speechvision.s2igan.image_features import image_features, inception_params
    from speechvision.s2igan.train_classifier import probabilities

    metrics = list(metrics)
    ds = load_dataset(data)
    records = ds.split(split)[:limit] if limit else ds.split(split)
    if not records:
        raise DatasetError(f"{ds.root}: split {split!r} is empty (splits: {', '.join(sorted({r.split for r in ds.records}))})")
    is_inception = "is" in metrics and is_model == "inception"
    if is_model not in ("classifier", "inception"):
        raise ValueError(f"is_model must be classifier or inception, got {is_model!r}")
    needs_cls = [m for m in metrics if "classifier" in REGISTRY[m].needs and not (m == "is" and is_inception)]
    if needs_cls and classifier is None:
        raise DatasetError(f"metrics {', '.join(needs_cls)} need --classifier (a run of `speechvision train classifier`)")
    pos = {r.id: i for i, r in enumerate(ds.records)}
    split_pos = [pos[r.id] for r in records]
    pipe = S2IGANPipeline.load(checkpoint)
    params = inception_params(inception_weights)
    report: dict = {"speechvision": __version__, "checkpoint": str(checkpoint or "bundled"), "data": str(ds.root),
                    "split": split, "seed": seed, "captions_per_image": captions_per_image,
                    "feature_extractor": params, "metrics": {}, "protocol": {m: REGISTRY[m].protocol for m in metrics}}
    timing: dict = {}
    real_uint8 = load_images_uint8([ds.path(r.image) for r in records])  # (N, H, W, 3)

    # Generated set for FID / IS / semantic
    items = [(ri, c) for ri, r in enumerate(records) for c in r.captions[:captions_per_image] if c.audio]
    fake = labels = None
    if {"fid", "is", "semantic"} & set(metrics):
        t0 = time.perf_counter()
        fake = _generate_uint8(pipe, [ds.path(c.audio) for _, c in items], seed=seed, batch_size=batch_size,
                               progress=progress, desc=f"generating {len(items)} images")
        timing["generate_s"] = round(time.perf_counter() - t0, 1)
        labels = np.array([records[ri].class_id for ri, _ in items])
        report["generated_images"] = int(len(fake))
        report["generated_px"] = int(fake.shape[1])

    inception = real_feats = fake_feats = None
    if {"fid", "map"} & set(metrics) or is_inception:
        inception = InceptionFeatures(inception_weights)
        if is_inception and not (inception.pytorch_fid and inception.net.has_logits):
            raise WeightsError("the Inception Score with the ImageNet Inception needs pytorch-fid's weights file "
                               "(pt_inception-2015-12-05-*.pth, with its 1008-class layer) as --inception-weights")
        real_feats = image_features(ds.root, [r.image for r in ds.records], progress=progress, weights=inception_weights)
    if "fid" in metrics or is_inception:
        feat_t: dict = {}
        fake_feats = inception_features(lambda a, b: fake[a:b], len(fake), model=inception, progress=progress,
                                        desc="Inception features (generated)", timing=feat_t)
        timing["inception_images_per_s"] = round(feat_t["images_per_s"], 2)

    if is_inception:
        import torch

        with torch.no_grad():
            probs_of = [torch.softmax(inception.net.logits(torch.from_numpy(f)).double(), dim=1).numpy()
                        for f in (fake_feats, real_feats[split_pos])]
        (m, s), (rm, rs) = (inception_score(p, min(10, len(p))) for p in probs_of)
        report["metrics"]["is"] = {"mean": m, "std": s, "splits": min(10, len(fake)), "images": int(len(fake)),
                                   "classifier": f"ImageNet Inception-v3 ({inception_weights})", "head": "imagenet",
                                   "classes": int(probs_of[0].shape[1])}
        report["metrics"]["is_real"] = {"mean": rm, "std": rs, "images": len(split_pos)}

    if "fid" in metrics:
        real_stats = real_statistics(ds, split, real_feats, split_pos, params)
        report["metrics"]["fid"] = {"value": frechet_distance(real_stats, feature_statistics(fake_feats)),
                                    "real_images": real_stats.n, "fake_images": int(len(fake))}
        train_pos = [pos[r.id] for r in ds.split("train")]
        if len(train_pos) >= 2:
            sub = np.random.default_rng(seed).choice(train_pos, size=min(len(train_pos), len(split_pos)), replace=False)
            report["metrics"]["fid_real_train_baseline"] = {
                "value": frechet_distance(real_stats, feature_statistics(real_feats[np.sort(sub)])),
                "real_images": real_stats.n, "train_images": int(len(sub)),
                "note": f"real {split} images vs a random subsample of real train images of the same size"}

    if needs_cls:
        cls, ck = load_classifier(classifier)
        head = _classifier_head(cls, classifier_head)
        probs = probabilities(cls, _float_images(fake))
        real_probs = probabilities(cls, _float_images(real_uint8))
        if "is" in metrics and not is_inception:
            splits = min(10, len(fake))
            m, s = inception_score(probs[head], splits)
            rm, rs = inception_score(real_probs[head], min(10, len(real_uint8)))
            report["metrics"]["is"] = {"mean": m, "std": s, "splits": splits, "images": int(len(fake)),
                                       "classifier": str(classifier), "head": head, "classes": probs[head].shape[1]}
            report["metrics"]["is_real"] = {"mean": rm, "std": rs, "images": int(len(real_uint8))}
        if "semantic" in metrics:
            vocab = ck["attributes"]
            truth = {k: np.array([vocab[k].index(records[ri].attributes[k]) for ri, _ in items]) for k in probs}
            pred = {k: v.argmax(1) for k, v in probs.items()}
            sem = {"all": attribute_accuracy(pred, truth)}
            heldout = np.array([c.voice in ds.heldout_voices for _, c in items])
            for name, mask in (("train_voices", ~heldout), ("heldout_voices", heldout)):
                if mask.any():
                    sem[name] = attribute_accuracy({k: v[mask] for k, v in pred.items()},
                                                   {k: v[mask] for k, v in truth.items()})
            real_truth = {k: np.array([vocab[k].index(r.attributes[k]) for r in records]) for k in probs}
            sem["real_images"] = attribute_accuracy({k: v.argmax(1) for k, v in real_probs.items()}, real_truth)
            report["metrics"]["semantic"] = sem

    if "map" in metrics:
        q_idx = select_queries(np.array([r.class_id for r in records]), per_class=2, seed=seed)
        gallery = [(qi, c) for qi in q_idx for c in records[qi].captions[:map_captions] if c.audio]
        g_img = _generate_uint8(pipe, [ds.path(c.audio) for _, c in gallery], seed=seed + 1_000_000,
                                batch_size=batch_size, progress=progress, desc=f"generating mAP gallery ({len(gallery)})")
        g_feats = inception_features(lambda a, b: g_img[a:b], len(g_img), model=inception, progress=progress,
                                     desc="Inception features (mAP gallery)")
        q_feats = real_feats[[split_pos[i] for i in q_idx]]
        report["metrics"]["map"] = generation_map(q_feats, np.array([records[i].class_id for i in q_idx]), g_feats,
                                                  np.array([records[qi].class_id for qi, _ in gallery]))
        report["metrics"]["map"]["captions_per_query"] = map_captions

    report["timing"] = timing
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
        (out / "table.md").write_text(table1_markdown([(Path(str(checkpoint or "bundled")).name, ds.meta.get("name", ds.root.name), report)]))
        if fake is not None:
            names = {r.class_id: r.class_name for r in records}
            save_class_grid(real_uint8, fake, np.array([r.class_id for r in records]), labels, names, out / "grid.png")
            if save_images:
                from PIL import Image

                (out / "generated").mkdir(exist_ok=True)
                for (ri, c), img in zip(items, fake):
                    Image.fromarray(img).save(out / "generated" / f"{records[ri].id}-{records[ri].captions.index(c)}.png")
    return report


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
            lines.append(f"| real images ({rep['split']} vs train) | {dataset} | – | {_fmt(base_fid)} | {is_real_txt} |")
    return "\n".join(lines) + "\n"


def evaluate_folders(real: str | Path, fake: str | Path, *, classifier: str | Path | None = None,
                     classifier_head: str | None = None, inception_weights: str | Path | None = None,
                     batch_size: int = 32, progress: bool = True, out: str | Path | None = None) -> dict:
    """FID between two image folders (any sizes; each image resized to 299 bilinearly), and the IS of
    the ``fake`` folder when a classifier is given; with ``out``, also written to ``out/metrics.json``.

    Raises:
        ImageFolderError: a missing or empty folder, or an unreadable image (named).
    """
    from speechvision.core.inception import InceptionFeatures
    from speechvision.metrics.features import image_files, inception_features, load_images_uint8
    from speechvision.metrics.fid import fid_from_features
    from speechvision.metrics.inception_score import inception_score
    from speechvision.s2igan.train_classifier import probabilities

    model = InceptionFeatures(inception_weights)
    feats = {}
    files = {"real": image_files(real), "fake": image_files(fake)}
    for name, fs in files.items():
        feats[name] = inception_features(lambda a, b, fs=fs: load_images_uint8(fs[a:b], same_size=False), len(fs),
                                         model=model, batch_size=batch_size, progress=progress,
                                         desc=f"Inception features ({name})")
    report = {"real": str(real), "fake": str(fake), "real_images": len(files["real"]), "fake_images": len(files["fake"]),
              "fid": fid_from_features(feats["real"], feats["fake"])}
    if classifier is not None:
        import torch

        cls, _ = load_classifier(classifier)
        head = _classifier_head(cls, classifier_head)
        size = cls.config.size_px
        imgs = [torch.nn.functional.interpolate(_float_images(im[None]), size=(size, size), mode="bilinear",
                                                antialias=True, align_corners=False)
                for im in load_images_uint8(files["fake"], same_size=False)]
        m, s = inception_score(probabilities(cls, torch.cat(imgs))[head], min(10, len(imgs)))
        report["is"] = {"mean": m, "std": s, "head": head}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "metrics.json").write_text(json.dumps(report, indent=2))
    return report
