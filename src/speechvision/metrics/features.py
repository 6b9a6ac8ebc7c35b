"""Stage 1 of every image metric: uint8 images -> Inception pool features (N, 2048).

Input contract: uint8 RGB, given as arrays (N, H, W, 3) or a list of (H, W, 3) arrays of any
sizes; each image is resized to 299x299 bilinearly without antialias
(:meth:`~speechvision.core.inception.InceptionFeatures.preprocess`). Generated images in
[-1, 1] are first quantised to uint8 exactly as the PNGs written by ``speechvision generate``
(:func:`speechvision.s2igan.pipeline.to_uint8`), so in-memory and folder evaluations agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from speechvision.core.errors import SpeechvisionError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageFolderError(SpeechvisionError, ValueError):
    """An image folder is missing, empty or holds an unreadable file."""


def load_images_uint8(paths: Sequence[str | Path], *, same_size: bool = True) -> np.ndarray | list[np.ndarray]:
    """Read image files as RGB uint8: one (N, H, W, 3) array, or (``same_size=False``) a list of
    (H, W, 3) arrays. Raises :class:`ImageFolderError` naming an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError) as e:
            raise ImageFolderError(f"{p}: not a readable image ({e.__class__.__name__})") from None
    return np.stack(out) if same_size else out


def check_readable(paths: Sequence[str | Path]) -> None:
    """Each file opens as an image (its header only: cheap), so a bad file is found before any model runs.

    Raises:
        ImageFolderError: naming the first file that is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    for p in paths:
        try:
            with Image.open(p):
                pass
        except (OSError, UnidentifiedImageError) as e:
            raise ImageFolderError(f"{p}: not a readable image ({e.__class__.__name__})") from None


def image_files(folder: str | Path, min_count: int = 1, why: str = "") -> list[Path]:
    """Image files directly in ``folder`` and below, sorted, each one a readable image; at least
    ``min_count`` of them (``why``: what needs that many, for the message).

    Raises:
        ImageFolderError: no such folder, a file instead of a folder, a file that is not a readable image, or
            fewer than ``min_count`` images.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ImageFolderError(f"{folder}: a file, not an image folder")
    if not folder.is_dir():
        raise ImageFolderError(f"{folder}: no such image folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageFolderError(f"{folder}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    check_readable(files)
    if len(files) < min_count:
        raise ImageFolderError(f"{folder}: holds {len(files)} image(s); {why or 'this'} needs at least {min_count}")
    return files


def _to_batch(images, device) -> torch.Tensor:
    from speechvision.core.inception import INCEPTION_SIZE_PX

    if isinstance(images, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device)
    # images of different sizes: resize each to the Inception size first (same op as preprocess)
    resized = [torch.nn.functional.interpolate(torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float(),
                                               size=(INCEPTION_SIZE_PX, INCEPTION_SIZE_PX), mode="bilinear",
                                               align_corners=False) for im in images]
    return torch.cat(resized).to(device)


def inception_features(load_batch: Callable[[int, int], np.ndarray | list], n: int, *, batch_size: int = 32,
                       model=None, device: str = "cpu", progress: bool = True, desc: str = "Inception features",
                       timing: dict | None = None) -> np.ndarray:
    """Pool features of ``n`` images; ``load_batch(start, stop)`` returns uint8 (b, H, W, 3) or a list.

    Returns (n, 2048) float32. Deterministic; independent of ``batch_size`` to float rounding
    (eval mode). If ``timing`` is a dict, ``images_per_s`` (model time only) is stored in it.
    """
    from tqdm import tqdm

    from speechvision.core.inception import InceptionFeatures

    model = model or InceptionFeatures(device=device)
    out = np.zeros((n, 2048), np.float32)
    spent = 0.0
    with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            batch = _to_batch(load_batch(start, stop), device)
            t0 = time.perf_counter()
            out[start:stop] = model(batch).cpu().numpy()
            spent += time.perf_counter() - t0
            bar.update(stop - start)
    if timing is not None:
        timing["images_per_s"] = n / spent if spent > 0 else float("nan")
    return out
