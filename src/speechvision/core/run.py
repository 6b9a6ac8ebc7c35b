"""A training run's folder: ``config.json`` (what the run was started with), ``log.jsonl`` (append-only,
one JSON object a line), ``checkpoint.pt`` (the latest state, for ``--resume``) and any other checkpoint
(``best.pt``). Shared by the SEN and GAN trainings.

Under data-parallel training only the main process writes: a :class:`RunFolder` made with
``main=False`` reads (``start``) but its writes do nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from speechvision.core.atomic import atomic_write_text
from speechvision.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class RunFolder:
    """The run folder ``path`` of checkpoints of ``kind`` (``sen``, ``gan``); ``main``: this process writes."""

    def __init__(self, path: str | Path, kind: str, *, main: bool = True):
        self.path, self.kind, self.main = Path(path), kind, main

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def start(self, resume: bool) -> dict | None:
        """The checkpoint to resume from (``resume``), or None for a new run.

        Raises:
            CheckpointError: ``resume`` without a readable ``checkpoint.pt``, or a new run where a run
                already exists (a ``checkpoint.pt``).
        """
        if resume:
            return load_checkpoint(self.checkpoint_path, self.kind)
        if self.checkpoint_path.exists():
            raise CheckpointError(f"{self.checkpoint_path}: a run already exists here; pass --resume or choose "
                                  "another --out")
        return None

    def write_config(self, info: dict) -> None:
        """``config.json``: ``info`` as indented JSON (written atomically; creates the folder)."""
        if self.main:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path / "config.json", json.dumps(info, indent=2))

    def append_log(self, entry: dict) -> None:
        """One line of ``log.jsonl``."""
        if self.main:
            with open(self.path / "log.jsonl", "a") as f:
                f.write(json.dumps(entry) + "\n")

    def save_checkpoint(self, state: dict, name: str = "checkpoint.pt") -> None:
        """``state`` as a checkpoint of this run's kind (atomically, see :func:`save_checkpoint`)."""
        if self.main:
            save_checkpoint(self.path / name, self.kind, state)
