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


def train_classifier(data: str | Path, out: str | Path, *, epochs: int = 10, batch_size: int = 128, lr: float = 2e-3,
                     size_px: int = 32, seed: int = 0, progress: bool = True) -> dict:
    """Train on the train split (images resized to ``size_px``, random horizontal flips, cosine lr);
    report accuracy per attribute on test."""
    from tqdm import tqdm

    ds = load_dataset(data)
    train, test = ds.split("train"), ds.split("test")
    if not train or not test:
        raise DatasetError(f"{ds.root}: need train and test splits")
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
            logits = model(xb)
            loss = sum(F.cross_entropy(logits[k], y[k][idx]) for k in logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    pred = predict(model, _images(ds, test))
    truth = attribute_targets(ds, test)
    acc = {f"{k}_accuracy": float((pred[k] == truth[k].numpy()).mean()) for k in pred}
    out = Path(out)
    save_checkpoint(out / "classifier.pt", "classifier", {"config": asdict(cfg),
                                                           "attributes": ds.meta["attributes"],
                                                           "model": model.state_dict(), "test": acc})
    summary = {"real_test": acc, "epochs": epochs, "test_images": len(test)}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return acc

