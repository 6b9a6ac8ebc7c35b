"""Visual encoders of the AVLM: per-frame face input at 25 fps -> (B, Tv, D) visual features.

- ``landmark-conv``: a small temporal conv encoder over pose-free expression features (136 = 68 aligned
  landmarks minus the canonical face), in the role of the paper's SMIRK encoder (FLAME jaw + expression
  per frame, small conv encoder -> 256-d per frame; AVLM code).
- ``crop-cnn``: a 2-D CNN over each aligned grey face crop (S x S), then the same temporal conv; in the
  role of the paper's "2D conv over 18x32x32" / FaceNet-crop encoders.
- ``fer``: a FROZEN pretrained 7-class facial-expression CNN (``facial-emotion-recognition`` 0.3.4, weights
  shipped in the pip package) run once per clip at data loading (``speechvision.avlm.face.fer_features``: 48 x 48
  aligned grey crop -> its 256-d penultimate layer); here only input normalisation + the same temporal conv
  are trained. In the role of the paper's pretrained expression encoders (the paper compares several
  visual encoders; this one brings expression knowledge learnt on real face photos).

All take a (B, Tv) bool ``mask`` of real frames (False = padding or no face) and zero the masked
frames' features.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import nn

from speechvision.avlm.face import FER_DIM, expression_features, face_crops

ENCODERS = ("landmark-conv", "crop-cnn", "fer")


class TemporalConv(nn.Module):
    """(B, Tv, F) -> (B, Tv, D): input projection, then residual 1-D conv blocks (kernel 5) over time."""

    def __init__(self, in_dim: int, dim: int, layers: int = 3, kernel: int = 5):
        super().__init__()
        self.inp = nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2), nn.GroupNorm(1, dim),
                                                  nn.GELU()) for _ in range(layers))
        self.out = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) * mask[..., None]
        h = rearrange(h, "b t d -> b d t")
        for block in self.blocks:
            h = h + block(h)
        return self.out(rearrange(h, "b d t -> b t d")) * mask[..., None]


class LandmarkConvEncoder(nn.Module):
    """Expression features (B, Tv, 136) -> (B, Tv, D)."""

    def __init__(self, dim: int, in_dim: int = 136, layers: int = 3):
        super().__init__()
        self.scale = 10.0  # features are in inter-ocular units (~0.01-0.2); bring them near unit scale
        self.temporal = TemporalConv(in_dim, dim, layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.temporal(x * self.scale, mask)


class CropCNNEncoder(nn.Module):
    """Aligned grey crops (B, Tv, S, S) uint8 or float in [0, 1] -> (B, Tv, D)."""

    def __init__(self, dim: int, layers: int = 2, channels: tuple = (16, 32, 64)):
        super().__init__()
        convs, c_in = [], 1
        for c in channels:
            convs += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(1, c), nn.GELU()]
            c_in = c
        self.cnn = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1))
        self.temporal = TemporalConv(c_in, dim, layers)

    def forward(self, crops: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = crops.shape[0]
        x = crops.float() / 255.0 if crops.dtype == torch.uint8 else crops
        f = self.cnn(rearrange(x, "b t h w -> (b t) 1 h w"))
        f = rearrange(f, "(b t) c 1 1 -> b t c", b=b)
        return self.temporal(f, mask)


class FEREncoder(nn.Module):
    """Precomputed frozen FER features (B, Tv, F=256) float -> (B, Tv, D).

    The features (``speechvision.avlm.face.fer_features``) are the pretrained expression CNN's penultimate
    post-ReLU activations (not its 7 class scores): non-negative, no unit, sparse (85 of 256 units fire on
    the astronaut photo) and up to ~30. A per-frame LayerNorm over F brings them to unit scale before the
    temporal conv; masked frames (padding, no face) come out zero.
    """

    def __init__(self, dim: int, in_dim: int = FER_DIM, layers: int = 3):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.temporal = TemporalConv(in_dim, dim, layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.norm(x.float()), mask)


def build_visual_encoder(name: str, dim: int) -> nn.Module:
    """Raises ValueError for an unknown encoder name."""
    if name == "landmark-conv":
        return LandmarkConvEncoder(dim)
    if name == "crop-cnn":
        return CropCNNEncoder(dim)
    if name == "fer":
        return FEREncoder(dim)
    raise ValueError(f"unknown visual encoder {name!r}; choose one of {', '.join(ENCODERS)}")


def visual_input(encoder: str, landmarks: np.ndarray, frames=None, has_face=None, crop_size_px: int = 32) -> np.ndarray:
    """One clip's visual input for ``encoder`` from its (T, 68, 2) landmarks: (T, 136) expression features
    (``landmark-conv``), (T, S, S) aligned grey crops (``crop-cnn``) or (T, 256) frozen FER features (``fer``).
    ``frames`` (T, H, W[, 3]) are needed by the last two, and may be a zero-argument callable that makes them
    (so the landmark encoder never renders); ``has_face`` (T,) marks frames without a face."""
    if encoder == "landmark-conv":
        return expression_features(landmarks, has_face)
    frames = frames() if callable(frames) else frames
    if encoder == "crop-cnn":
        return face_crops(frames, landmarks, size=crop_size_px)
    if encoder == "fer":  # frozen pretrained expression CNN
        from speechvision.avlm.face import fer_features

        return fer_features(frames, landmarks, has_face)
    raise ValueError(f"unknown visual encoder {encoder!r}")
