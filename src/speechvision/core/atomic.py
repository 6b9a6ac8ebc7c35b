"""The one write-to-temporary-then-rename, for every file the project writes (checkpoints, manifests,
caches, audio, images). Kept free of torch so that synthesis workers and dataset code import it cheaply."""

from __future__ import annotations

import os
import re
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


# The temporary name atomic_path writes before its rename: ``<stem>.tmp<pid><suffix>``.
TEMPORARY = re.compile(r"^.+\.tmp(?P<pid>\d+)(\.[^.]+)?$")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (it may still write its temporary). A zombie (killed,
    not yet reaped by its parent; orphaned workers of a killed build can stay so for a while where PID 1
    does not reap) writes nothing, so it counts as gone."""
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process
        return True
    except (ProcessLookupError, OverflowError, ValueError):  # none, or no such pid number
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux): trust the signal check
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")  # state after "(comm)"


def remove_stale_temporaries(folder: Path, *, recursive: bool = False, names: str = "*.tmp*") -> list[Path]:
    """Remove the temporaries of atomic writes in ``folder`` (``<stem>.tmp<pid><suffix>``, and below it with
    ``recursive``; only those matching the glob ``names``) whose writer no longer runs, i.e. what a killed
    process left; returns them. Temporaries of a running process are left alone, and none is ever read."""
    if not folder.is_dir():
        return []
    found = folder.rglob(names) if recursive else folder.glob(names)
    stale = [p for p in found if (m := TEMPORARY.match(p.name)) and p.is_file()
             and not process_alive(int(m["pid"]))]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
