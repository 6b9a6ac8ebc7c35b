"""A training run's folder: ``config.json`` (what the run was started with), ``log.jsonl`` (append-only,
one JSON object a line), ``checkpoint.pt`` (the latest state, for ``--resume``) and any other checkpoint
(``best.pt``). Shared by the SEN and GAN trainings.

``log.jsonl`` never runs ahead of ``checkpoint.pt``: a training's log lines (:meth:`RunFolder.log`) wait until
the next :meth:`RunFolder.checkpoint`, which writes the checkpoint first and then appends them, so a run
killed between two checkpoints and resumed logs each step once. The lines of a checkpoint are also kept in
``log.pending.json`` until they are appended, so a kill between the checkpoint and its lines loses none
(:meth:`RunFolder.start` appends them on ``--resume``).

Under data-parallel training only the main process writes: a :class:`RunFolder` made with
``main=False`` reads (``start``) but its writes do nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from speechvision.core.atomic import atomic_write_text, remove_stale_temporaries
from speechvision.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

PENDING_LOG = "log.pending.json"  # the log lines of the checkpoint being written, until they are in log.jsonl


class RunFolder:
    """The run folder ``path`` of checkpoints of ``kind`` (``sen``, ``gan``); ``main``: this process writes;
    ``counter``: the checkpoint key that counts the run's progress (``step``, ``epoch``)."""

    def __init__(self, path: str | Path, kind: str, *, main: bool = True, counter: str = "step"):
        self.path, self.kind, self.main, self.counter = Path(path), kind, main, counter
        self.pending: list[dict] = []

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def start(self, resume: bool) -> dict | None:
        """The checkpoint to resume from (``resume``; the log lines of that checkpoint that a kill kept out of
        ``log.jsonl`` are appended first), or None for a new run.

        Raises:
            CheckpointError: ``resume`` without a readable ``checkpoint.pt``, or a new run where a run
                already exists (a ``checkpoint.pt``).
        """
        if resume:
            ckpt = load_checkpoint(self.checkpoint_path, self.kind)
            if self.main:
                remove_stale_temporaries(self.path, recursive=True)  # what a kill during a save left (never read)
                self._recover_log(ckpt.get(self.counter))
            return ckpt
        if self.checkpoint_path.exists():
            raise CheckpointError(f"{self.checkpoint_path}: a run already exists here; pass --resume or choose "
                                  "another --out")
        return None

    def write_config(self, info: dict) -> None:
        """``config.json``: ``info`` as indented JSON (written atomically; creates the folder)."""
        if self.main:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path / "config.json", json.dumps(info, indent=2))

    def log(self, entry: dict) -> None:
        """One line of ``log.jsonl``, written with the next :meth:`checkpoint` (after it)."""
        if self.main:
            self.pending.append(entry)

    def append_log(self, entry: dict) -> None:
        """One line of ``log.jsonl``, now (a record of the run, not of a step: e.g. what a resume changed)."""
        if self.main:
            self._append(json.dumps(entry) + "\n")

    def checkpoint(self, state: dict) -> None:
        """``checkpoint.pt`` holds ``state``, then ``log.jsonl`` the lines :meth:`log` held back (kept in
        ``log.pending.json`` meanwhile, for :meth:`start`)."""
        if not self.main:
            return
        lines, self.pending = "".join(json.dumps(e) + "\n" for e in self.pending), []
        pending = self.path / PENDING_LOG
        if lines:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(pending, json.dumps({self.counter: state.get(self.counter), "lines": lines}))
        self.save_checkpoint(state)
        if lines:
            self._append(lines)
            pending.unlink(missing_ok=True)

    def save_checkpoint(self, state: dict, name: str = "checkpoint.pt") -> None:
        """``state`` as a checkpoint of this run's kind (atomically, see :func:`save_checkpoint`); the held-back
        log lines wait for :meth:`checkpoint`."""
        if self.main:
            save_checkpoint(self.path / name, self.kind, state)

    def _append(self, text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "log.jsonl", "a") as f:
            f.write(text)

    def _recover_log(self, at) -> None:
        """Append the lines of ``log.pending.json`` when they belong to the checkpoint at ``at`` (a kill came
        after the checkpoint, before its lines) and ``log.jsonl`` does not end with them yet; then remove it."""
        pending = self.path / PENDING_LOG
        if not pending.is_file():
            return
        try:
            held = json.loads(pending.read_text())
            lines = held["lines"] if held.get(self.counter) == at else ""
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            lines = ""  # not written in full: the checkpoint it came with was not either
        log = self.path / "log.jsonl"
        if lines and not (log.is_file() and log.read_text().endswith(lines)):
            self._append(lines)
        pending.unlink(missing_ok=True)
