"""Domain classifiers of real images, one head per attribute (e.g. garment and colour).

Used to judge generated images (semantic accuracy), never the SEN. (B, 3, H, W) in [-1, 1] ->
{attribute: logits (B, n_values)}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ClassifierConfig:
    """Attributes: heads (attribute -> number of values), width (channels of the first conv),
    size_px (input side; other sizes are resized to it)."""

    heads: dict = field(default_factory=dict)
    width: int = 32
    size_px: int = 64


class AttributeClassifier(nn.Module):
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
        h = self.body(images)
        return {name: head(h) for name, head in self.heads.items()}
