"""Checkpoints: state dicts with config, step, optimiser state and the package version.

Written atomically (temporary file, fsync, rename) so a kill never leaves a half-written file, and
read with ``torch.load(weights_only=True)``: no arbitrary pickle is ever executed.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from speechvision import __version__
from speechvision.core.atomic import atomic_path
from speechvision.core.errors import SpeechvisionError

FORMAT = "speechvision-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(SpeechvisionError, ValueError):
    """Missing, corrupt, foreign or incompatible checkpoint."""


def save_checkpoint(path: str | Path, kind: str, state: dict) -> None:
    """Save ``state`` with the format, package version and ``kind`` (see :func:`load_checkpoint`), atomically."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, "kind": kind, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def checkpoint_state(ckpt: dict) -> dict:
    """The state a loaded checkpoint was saved with: ``ckpt`` without the keys ``save_checkpoint`` (format,
    format version, package version, kind) and ``load_checkpoint`` (path) add, ready to be saved again."""
    return {k: v for k, v in ckpt.items() if k not in ("format", "format_version", "version", "kind", "path")}


def checkpoint_file(path: str | Path) -> Path:
    """The file a checkpoint ``path`` means: a run folder's ``best.pt``, else its ``checkpoint.pt``; a file
    (or a folder holding neither) as given."""
    path = Path(path)
    if path.is_dir():
        return next((path / n for n in ("best.pt", "checkpoint.pt") if (path / n).is_file()), path)
    return path


def load_checkpoint(path: str | Path, kind: str | tuple[str, ...]) -> dict:
    """Load a checkpoint of ``kind`` (``sen``, ``gan``, ``s2igan``, or a tuple of them); ``path`` may be a run folder.

    Raises:
        CheckpointError: no such file, not a speechvision checkpoint, another kind, or another
            checkpoint format version.
    """
    path = checkpoint_file(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: no best.pt or checkpoint.pt in this run folder")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty (0 bytes); copy or export it again")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notes: the error below says it in one line
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = ("a pickle that is not weights-only, which is never loaded"
               if "weights only" in str(e).lower() else "corrupt or truncated")
        raise CheckpointError(f"{path}: not a readable weights-only checkpoint ({why})") from None
    except Exception:  # noqa: BLE001 - truncated zip, not a torch file at all
        raise CheckpointError(f"{path}: not a readable weights-only checkpoint (corrupt, truncated or not a "
                              "checkpoint)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a speechvision checkpoint")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {ckpt.get('format_version')} (speechvision "
                              f"{ckpt.get('version')}) is not format {FORMAT_VERSION} of speechvision {__version__}")
    kinds = (kind,) if isinstance(kind, str) else kind
    if ckpt.get("kind") not in kinds:
        raise CheckpointError(f"{path}: a '{ckpt.get('kind')}' checkpoint, expected '{' or '.join(kinds)}'")
    ckpt["path"] = str(path)
    return ckpt


def load_model_checkpoint(path: str | Path, kind: str, model_version: int, error: type[Exception],
                          train_command: str, name: str) -> dict:
    """``load_checkpoint`` of one file for a model family (``name`` in messages) with its own ``model_version`` key.

    Raises:
        ``error``: the file is missing (naming ``train_command``) or holds another model version.
        CheckpointError: as ``load_checkpoint``.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: missing; train one with `{train_command}`")
    ckpt = load_checkpoint(path, kind)
    if ckpt.get("model_version") != model_version:
        raise error(f"{path}: {name} version {ckpt.get('model_version')}, expected {model_version}")
    return ckpt
