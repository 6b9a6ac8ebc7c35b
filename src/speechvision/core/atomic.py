"""The one write-to-temporary-then-rename, for every file the project writes (checkpoints, manifests,
caches, audio, images). Kept free of torch so that synthesis workers and dataset code import it cheaply."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """The one write-to-temporary-then-rename: yields a temporary path beside ``path`` (same suffix, so
    writers that read the format from the extension work); when the block ends it is fsynced and renamed
    over ``path``, so a kill never leaves a half-written file. On an error the temporary file is removed
    and ``path`` is untouched. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """``path`` holds ``text`` (UTF-8) in full or is unchanged (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
