"""Training of the attribute classifiers on real images (``speechvision train classifier``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speechvision.core.checkpoint import load_checkpoint, save_checkpoint
from speechvision.data.manifest import Dataset, DatasetError, load_dataset
from speechvision.metrics.features import load_images_uint8
from speechvision.s2igan.classifier import AttributeClassifier, ClassifierConfig


def attribute_targets(ds: Dataset, records) -> dict[str, torch.Tensor]:
    vocab = ds.meta.get("attributes", {})
    if not vocab:
        raise DatasetError(f"{ds.root}: dataset.json lists no attributes to classify")
    return {name: torch.tensor([values.index(r.attributes[name]) for r in records]) for name, values in vocab.items()}


def _resize(images: torch.Tensor, size_px: int) -> torch.Tensor:
    if images.shape[-1] == size_px:
        return images
    return F.interpolate(images, size=(size_px, size_px), mode="bilinear", antialias=True, align_corners=False)


def _images(ds: Dataset, records) -> torch.Tensor:
    x = torch.from_numpy(load_images_uint8([ds.path(r.image) for r in records])).permute(0, 3, 1, 2)
    return x.float() / 127.5 - 1.0


@torch.no_grad()
def probabilities(model: AttributeClassifier, images: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """images (B, 3, H, W) in [-1, 1] (resized to the classifier's size, bilinear with antialias) ->
    {attribute: (B, K) softmax probabilities, float64}."""
    model.eval()
    out: dict[str, list] = {}
    for s in range(0, len(images), batch_size):
        for k, v in model(_resize(images[s:s + batch_size].float(), model.config.size_px)).items():
            out.setdefault(k, []).append(torch.softmax(v.double(), dim=1).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def predict(model: AttributeClassifier, images: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """images (B, 3, H, W) in [-1, 1] -> {attribute: (B,) predicted index}."""
    return {k: v.argmax(1) for k, v in probabilities(model, images, batch_size).items()}


def train_classifier(data: str | Path, out: str | Path, *, epochs: int = 10, batch_size: int = 128, lr: float = 2e-3,
                     size_px: int = 32, seed: int = 0, progress: bool = True) -> dict:
    """Train on the train split (images resized to ``size_px``, random horizontal flips, cosine lr);
    report accuracy per attribute on test."""
    from tqdm import tqdm

    ds = load_dataset(data)
    train, test = ds.split("train"), ds.split("test")
    if not train or not test:
        raise DatasetError(f"{ds.root}: need train and test splits")
    x, y = _resize(_images(ds, train), size_px), attribute_targets(ds, train)
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
    (out / "metrics.json").write_text(json.dumps({"real_test": acc, "epochs": epochs, "test_images": len(test)}, indent=2))
    return acc


def load_classifier(path: str | Path) -> tuple[AttributeClassifier, dict]:
    ck = load_checkpoint(Path(path) / "classifier.pt" if Path(path).is_dir() else path, "classifier")
    cfg = ClassifierConfig(**ck["config"])
    model = AttributeClassifier(cfg)
    model.load_state_dict(ck["model"])
    return model.eval(), ck
