"""Real-image augmentation as the official S2IGAN code does it: resize, random crop, horizontal flip.

The official code (``datasets.py``, StackGAN-v2's ``get_imgs``), for every real image in every epoch, after
the CUB bounding-box crop (:func:`speechvision.data.external.crop_cub`): ``transforms.Resize(int(imsize * 76
/ 64))`` (the shorter side to 304 px for imsize 256, aspect kept), ``transforms.RandomCrop(imsize)``,
``transforms.RandomHorizontalFlip()`` (p = 0.5), then a resize per smaller scale (64, 128 px). The SEN's
image encoder and the GAN's real and wrong images all see these views. Since the crop is taken from the
bounding-box crop, a view never shows what that crop leaves out.

Here the Inception features of the real images are cached (Inception runs about 8 images/s on 2 CPU cores),
so each image has K fixed views (``AugmentConfig.views``): view 0 is the plain image (resized to S x S, what
training sees without augmentation; validation, retrieval and evaluation use it), views 1 .. K-1 are
augmented, and every epoch draws one of views 1 .. K-1 per image (:func:`view_for_epoch`). Every draw comes
from its own ``torch.Generator`` seeded with a hash of (seed, image key) or (seed, epoch), never from the
global random state, so a run without augmentation keeps its random streams bit-identical.

The spoken-fashion option (``max_shift_px`` > 0): instead of the resize and crop, the plain S x S image is
shifted by up to ``max_shift_px`` pixels in each direction (the edges replicated), then flipped.

Shapes: images (3, H, W) or (N, 3, H, W) uint8 RGB; views (N, K, 3, S, S) uint8 with S = ``size_px``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from speechvision.s2igan.config import AugmentConfig


def draw_seed(purpose: str, seed: int, key: int) -> int:
    """A 63-bit generator seed from (purpose, seed, key); distinct purposes never share a stream."""
    digest = hashlib.sha256(f"{purpose}|{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def check_augment(cfg: AugmentConfig) -> None:
    """Raises ValueError for ``views`` < 1, ``resize_ratio`` < 1 or ``max_shift_px`` < 0."""
    if cfg.views < 1:
        raise ValueError(f"data.augment.views must be at least 1, got {cfg.views}")
    if cfg.resize_ratio < 1:
        raise ValueError(f"data.augment.resize_ratio must be at least 1 (the crop is taken from the resized "
                         f"image), got {cfg.resize_ratio}")
    if cfg.max_shift_px < 0:
        raise ValueError(f"data.augment.max_shift_px must be >= 0, got {cfg.max_shift_px}")


def view_draws(cfg: AugmentConfig, key: int, n_views: int) -> torch.Tensor:
    """(n_views - 1, 3) float64 uniforms in [0, 1) of views 1 .. n_views - 1 of the image with ``key``:
    vertical and horizontal crop (or shift) position as a fraction of the free range, and the flip
    (flipped when < 0.5 and ``cfg.hflip``). View k's draw depends on (seed, key, k) only, not on
    ``n_views``, so raising K keeps the earlier views."""
    g = torch.Generator().manual_seed(draw_seed("view", cfg.seed, key))
    return torch.rand(max(0, n_views - 1), 3, generator=g, dtype=torch.float64)


def resize_uint8(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, h, w) uint8: bilinear with antialias, rounded (as ``gan_data.uint8_pyramid``)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    x = F.interpolate(img[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return x[0].round().clamp(0, 255).to(torch.uint8)


def resized_size(height: int, width: int, cfg: AugmentConfig, size_px: int) -> tuple[int, int]:
    """(h, w) of the official ``transforms.Resize(int(size_px * resize_ratio))``: the shorter side to
    ``int(size_px * resize_ratio)`` px (304 for 256), the longer one scaled to keep the aspect (truncated)."""
    short = int(size_px * cfg.resize_ratio)
    if height <= width:
        return short, max(short, int(short * width / height))
    return max(short, int(short * height / width)), short


def _offset(u: float, free: int) -> int:
    """Uniform integer in [0, free] from a uniform ``u`` in [0, 1)."""
    return min(free, int(u * (free + 1)))


def image_views(img: torch.Tensor, cfg: AugmentConfig, size_px: int, key: int, n_views: int) -> torch.Tensor:
    """(3, H, W) uint8 -> (n_views, 3, S, S) uint8 views of one image (see the module docstring).

    View 0: the image resized to S x S. Views k >= 1, crop mode (``max_shift_px`` = 0): the image resized by
    :func:`resized_size`, an S x S crop at a uniform offset, flipped with p = 0.5 (``hflip``). Shift mode: the
    plain S x S image padded by ``max_shift_px`` (edges replicated), an S x S window at a uniform offset
    (a shift of -m .. m px each way), flipped likewise.
    """
    plain = resize_uint8(img, (size_px, size_px))
    draws = view_draws(cfg, key, n_views).tolist()
    if not draws:
        return plain[None]
    base = crop_base(img, cfg, size_px)
    return torch.stack([plain] + [_crop(base, cfg, size_px, *d) for d in draws]).contiguous()


def crop_base(img: torch.Tensor, cfg: AugmentConfig, size_px: int) -> torch.Tensor:
    """(3, H, W) uint8 -> the image every view is cropped from: resized by :func:`resized_size` (crop mode),
    or the plain S x S image padded by ``max_shift_px`` with its edges replicated (shift mode)."""
    m = cfg.max_shift_px
    if m > 0:
        plain = resize_uint8(img, (size_px, size_px))
        return F.pad(plain[None].float(), (m, m, m, m), mode="replicate")[0].to(torch.uint8)
    return resize_uint8(img, resized_size(img.shape[-2], img.shape[-1], cfg, size_px))


def _crop(base: torch.Tensor, cfg: AugmentConfig, size_px: int, uy: float, ux: float, uf: float) -> torch.Tensor:
    """The S x S window of ``base`` at the uniform draws (uy, ux), flipped when ``uf`` < 0.5 and ``hflip``."""
    S = size_px
    y0, x0 = _offset(uy, base.shape[-2] - S), _offset(ux, base.shape[-1] - S)
    view = base[:, y0:y0 + S, x0:x0 + S]
    return view.flip(-1) if cfg.hflip and uf < 0.5 else view


def epoch_view(base: torch.Tensor, cfg: AugmentConfig, size_px: int, key: int, epoch: int) -> torch.Tensor:
    """(3, S, S) uint8: a fresh augmented view of the image with ``key`` for training ``epoch``, cropped from
    its :func:`crop_base` (``data.augment.on_the_fly``: a new crop and flip every epoch, as the official code
    draws them). A function of (seed, key, epoch) only, so a resumed run sees the same views."""
    g = torch.Generator().manual_seed(draw_seed("epoch-view", cfg.seed, int(key) * 1_000_003 + int(epoch)))
    uy, ux, uf = torch.rand(3, generator=g, dtype=torch.float64).tolist()
    return _crop(base, cfg, size_px, uy, ux, uf).contiguous()


def augment_views(images: torch.Tensor | Sequence[torch.Tensor], cfg: AugmentConfig, size_px: int, *,
                  keys: Sequence[int] | None = None, n_views: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) uint8, or N (3, H_i, W_i) uint8 of any sizes -> (N, K, 3, S, S) uint8 views.

    ``keys``: each image's seed key (default 0 .. N-1; the dataset uses the record's position in the
    dataset, so an image has the same views in the SEN and in the GAN); ``n_views``: K (default
    ``cfg.views``). Memory: N x K x 3 x S x S bytes (CUB train at 256 px, K = 4: 7.0 GB).

    Raises:
        ValueError: a bad config (:func:`check_augment`) or ``len(keys) != N``.
    """
    check_augment(cfg)
    n_views = cfg.views if n_views is None else n_views
    keys = list(range(len(images))) if keys is None else list(keys)
    if len(keys) != len(images):
        raise ValueError(f"{len(keys)} keys for {len(images)} images")
    out = torch.empty(len(images), n_views, 3, size_px, size_px, dtype=torch.uint8)
    for i, (img, key) in enumerate(zip(images, keys)):
        out[i] = image_views(img, cfg, size_px, int(key), n_views)
    return out


def view_for_epoch(seed: int, epoch: int, n_images: int, n_views: int) -> torch.Tensor:
    """(n_images,) int64: the view each image shows in ``epoch``, uniform over the augmented views
    1 .. n_views - 1 (the official code draws a new crop every epoch; here a new one of the K - 1 cached
    views), all 0 when ``n_views`` is 1. A function of (seed, epoch) only, so a resumed run draws the same."""
    if n_views <= 1:
        return torch.zeros(n_images, dtype=torch.long)
    g = torch.Generator().manual_seed(draw_seed("epoch", seed, epoch))
    return 1 + torch.randint(n_views - 1, (n_images,), generator=g)
