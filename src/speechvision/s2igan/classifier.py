"""Domain classifiers of real images, one head per attribute (e.g. garment and colour), and their inference.

Used to judge generated images (Inception Score, semantic accuracy), never the SEN.
(B, 3, H, W) in [-1, 1] -> {attribute: logits (B, n_values)}. Training is
:mod:`speechvision.s2igan.train_classifier`; loading and inference (:func:`load_classifier`,
:func:`probabilities`, :func:`predict`) are here, beside the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechvision.core.checkpoint import load_checkpoint
from speechvision.core.images import to_unit_range


@dataclass
class ClassifierConfig:
    """Attributes: heads (attribute -> number of values), width (channels of the first conv),
    size_px (input side; other sizes are resized to it)."""

    heads: dict = field(default_factory=dict)
    width: int = 32
    size_px: int = 64


class AttributeClassifier(nn.Module):
    """Four conv blocks (conv 3x3, batch norm, ReLU, max pool 2), global average pool, one linear head per attribute."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        w, layers, ch = config.width, [], 3
        for out in (w, 2 * w, 4 * w, 4 * w):
            layers += [nn.Conv2d(ch, out, 3, 1, 1), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            ch = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2))
        self.heads = nn.ModuleDict({name: nn.Linear(ch, n) for name, n in config.heads.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, size_px, size_px) in [-1, 1] -> {attribute: (B, n_values) logits}."""
        h = self.body(images)
        return {name: head(h) for name, head in self.heads.items()}


def load_classifier(path: str | Path) -> tuple[AttributeClassifier, dict]:
    """A trained classifier (in eval mode) and its checkpoint dict (``attributes``: attribute -> value
    names, ``test``: real test accuracies); ``path`` is ``classifier.pt`` or its run folder.

    Raises:
        CheckpointError: no such file, or not a classifier checkpoint.
    """
    ck = load_checkpoint(Path(path) / "classifier.pt" if Path(path).is_dir() else path, "classifier")
    model = AttributeClassifier(ClassifierConfig(**ck["config"]))
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def select_head(model: AttributeClassifier, head: str | None) -> str:
    """``head``, checked against the model's heads; None -> the first head.

    Raises:
        ValueError: the model has no such head (the message lists its heads).
    """
    heads = list(model.config.heads)
    if head is None:
        return heads[0]
    if head not in heads:
        raise ValueError(f"classifier has no head {head!r}; it has {', '.join(heads)}")
    return head


def resize_images(images: torch.Tensor, size_px: int) -> torch.Tensor:
    """(B, 3, H, W) float -> (B, 3, size_px, size_px), bilinear with antialias (unchanged if already that size)."""
    if tuple(images.shape[-2:]) == (size_px, size_px):
        return images
    return F.interpolate(images, size=(size_px, size_px), mode="bilinear", antialias=True, align_corners=False)


def classifier_input(images_uint8: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 array -> (B, 3, H, W) float32 in [-1, 1] (``x / 127.5 - 1``)."""
    if not images_uint8.flags.writeable:
        images_uint8 = images_uint8.copy()
    return to_unit_range(torch.from_numpy(images_uint8).permute(0, 3, 1, 2))


@torch.no_grad()
def probabilities(model: AttributeClassifier, images: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """images (B, 3, H, W) in [-1, 1] (resized to the classifier's size, bilinear with antialias) ->
    {attribute: (B, K) softmax probabilities, float64}. Puts ``model`` in eval mode."""
    model.eval()
    out: dict[str, list] = {}
    for s in range(0, len(images), batch_size):
        for k, v in model(resize_images(images[s:s + batch_size].float(), model.config.size_px)).items():
            out.setdefault(k, []).append(torch.softmax(v.double(), dim=1).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def predict(model: AttributeClassifier, images: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """images (B, 3, H, W) in [-1, 1] -> {attribute: (B,) predicted value index}."""
    return {k: v.argmax(1) for k, v in probabilities(model, images, batch_size).items()}
