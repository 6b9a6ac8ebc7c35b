"""Training of the attribute classifiers on real images (``speechvision train classifier``).

Loading and inference (``load_classifier``, ``probabilities``, ``predict``) are in
:mod:`speechvision.s2igan.classifier`; they are imported here for the training loop's test accuracy.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from speechvision.core.checkpoint import save_checkpoint
from speechvision.core.images import to_unit_range
from speechvision.data.manifest import Dataset, DatasetError, load_dataset
from speechvision.metrics.features import load_images_uint8
from speechvision.s2igan.classifier import (
    AttributeClassifier,
    ClassifierConfig,
    classifier_input,
    predict,
    resize_images,
)


def attribute_targets(ds: Dataset, records) -> dict[str, torch.Tensor]:
    """{attribute: (N,) int64 value indices} of ``records`` in the dataset's attribute vocabulary.

    Raises:
        DatasetError: the dataset lists no attributes.
    """
    vocab = ds.meta.get("attributes", {})
    if not vocab:
        raise DatasetError(f"{ds.root}: dataset.json lists no attributes to classify")
    return {name: torch.tensor([values.index(r.attributes[name]) for r in records]) for name, values in vocab.items()}


def _images(ds: Dataset, records) -> torch.Tensor:
    return classifier_input(load_images_uint8([ds.path(r.image) for r in records]))


def palette_rgb(ds: Dataset, attribute: str = "colour") -> torch.Tensor:
    """(K, 3) float sRGB 0-255 of the dataset's colour values, in the order of ``attributes[attribute]``.

    Raises:
        DatasetError: dataset.json has no ``palette`` entry for every value of ``attribute``.
    """
    values, palette = ds.meta.get("attributes", {}).get(attribute), ds.meta.get("palette", {})
    if not values or any(v not in palette for v in values):
        raise DatasetError(f"{ds.root}: recolouring needs dataset.json's palette for every {attribute!r} value")
    return torch.tensor([palette[v] for v in values], dtype=torch.float32)


def recolour(images: torch.Tensor, rgb_from: torch.Tensor, rgb_to: torch.Tensor) -> torch.Tensor:
    """Images drawn by :func:`speechvision.data.spoken_fashion.colourise` (ink ``a`` on white, ``255 - a (255 - c)``)
    redrawn in another colour: (B, 3, H, W) in [-1, 1], rgb_from / rgb_to (B, 3) sRGB 0-255 -> (B, 3, H, W).

    The ink is read from the channel where the source colour is darkest, so it is exact up to uint8 rounding.
    Bilinear resizing commutes with it (both are affine per pixel), so it may run on resized images.
    """
    dark_from = 255.0 - rgb_from
    channel = dark_from.argmax(1)
    rows = torch.arange(len(images))
    ink = (255.0 - (images[rows, channel] + 1) * 127.5) / dark_from[rows, channel][:, None, None]
    rgb = 255.0 - ink.clamp(0, 1)[:, None] * (255.0 - rgb_to)[:, :, None, None]
    return to_unit_range(rgb)


def train_classifier(data: str | Path, out: str | Path, *, epochs: int = 10, batch_size: int = 128, lr: float = 2e-3,
                     size_px: int = 32, seed: int = 0, recolour_p: float = 0.0, progress: bool = True) -> dict:
    """Train on the train split (images resized to ``size_px``, random horizontal flips, cosine lr);
    report accuracy per attribute on test.

    ``recolour_p``: the probability that a training image is redrawn in a uniformly drawn palette colour (its colour
    target follows; :func:`recolour`). The train split holds no image of the held-out garment-colour combinations,
    so without it the garment head may learn colour as a garment cue; with it every combination is seen.

    Raises:
        DatasetError: no train or test split; ``recolour_p`` > 0 on a dataset without a palette.
    """
    from tqdm import tqdm

    ds = load_dataset(data)
    train, test = ds.split("train"), ds.split("test")
    if not train or not test:
        raise DatasetError(f"{ds.root}: need train and test splits")
    palette = palette_rgb(ds) if recolour_p > 0 else None
    x, y = resize_images(_images(ds, train), size_px), attribute_targets(ds, train)
    torch.manual_seed(seed)
    cfg = ClassifierConfig(heads={k: len(v) for k, v in ds.meta["attributes"].items()}, size_px=size_px)
    model = AttributeClassifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps))
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for s in tqdm(range(0, len(x) - batch_size + 1, batch_size), desc=f"classifier epoch {epoch + 1}/{epochs}",
                      disable=not progress, leave=False):
            idx = perm[s:s + batch_size]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            yb = {k: v[idx] for k, v in y.items()}
            if palette is not None:
                xb, yb["colour"] = _recolour_batch(xb, yb["colour"], palette, recolour_p, g)
            logits = model(xb)
            loss = sum(F.cross_entropy(logits[k], yb[k]) for k in logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    acc = _accuracy(model, ds, test)
    unseen = ds.split("test_unseen")  # the held-out combinations: the garment head's colour-invariance
    acc_unseen = _accuracy(model, ds, unseen) if unseen else None
    out = Path(out)
    save_checkpoint(out / "classifier.pt", "classifier", {"config": asdict(cfg),
                                                           "attributes": ds.meta["attributes"],
                                                           "model": model.state_dict(), "test": acc,
                                                           "test_unseen": acc_unseen, "recolour_p": recolour_p})
    summary = {"real_test": acc, "real_test_unseen": acc_unseen, "epochs": epochs, "test_images": len(test),
               "recolour_p": recolour_p}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return acc


def _recolour_batch(xb: torch.Tensor, colour: torch.Tensor, palette: torch.Tensor, p: float,
                    g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A fraction ``p`` of the batch redrawn in uniformly drawn palette colours; returns images and colour targets."""
    new = torch.randint(len(palette), colour.shape, generator=g)
    pick = torch.rand(len(colour), generator=g) < p
    redrawn = recolour(xb, palette[colour], palette[new])
    return torch.where(pick[:, None, None, None], redrawn, xb), torch.where(pick, new, colour)


def _accuracy(model: AttributeClassifier, ds: Dataset, records) -> dict[str, float]:
    """{"<attribute>_accuracy": accuracy on the real images of ``records``}."""
    pred, truth = predict(model, _images(ds, records)), attribute_targets(ds, records)
    return {f"{k}_accuracy": float((pred[k] == truth[k].numpy()).mean()) for k in pred}
