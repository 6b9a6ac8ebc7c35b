"""Image side of the SEN (S2IGAN Sec. 2.1; official ``models.ImageModels.Inception_v3``).

* The frozen Inception-v3 that gives the 2048-d pool features is
  :class:`speechvision.core.inception.InceptionFeatures` (shared with the metrics).
* :class:`ImageEncoder`: trainable Linear(2048 -> D) + L2 norm over cached pool features.
* :class:`SmallCNNEncoder`: a small trainable CNN over images in [-1, 1], for fast tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ImageEncoderConfig:
    """Attributes: kind (``inception`` | ``cnn``), feature_dim (2048 pool features), embedding_dim (1024)."""

    kind: str = "inception"
    feature_dim: int = 2048
    embedding_dim: int = 1024


class ImageEncoder(nn.Module):
    """(B, 2048) frozen pool features -> (B, D) unit-norm embeddings (the trainable part of the IED)."""

    def __init__(self, config: ImageEncoderConfig = ImageEncoderConfig()):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.feature_dim, config.embedding_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(feats), dim=-1)


class SmallCNNEncoder(nn.Module):
    """(B, 3, H, W) images in [-1, 1] -> (B, D) unit-norm embeddings; a fast trainable stand-in."""

    def __init__(self, config: ImageEncoderConfig = ImageEncoderConfig(kind="cnn")):
        super().__init__()
        self.config = config
        layers, ch = [], 3
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(ch, out, 3, 2, 1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            ch = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.proj = nn.Linear(ch, config.embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.body(images)), dim=-1)
