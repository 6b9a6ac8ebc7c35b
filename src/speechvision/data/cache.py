"""Feature caches: log-mels of every caption and image features, computed once.

A cache is one safetensors file under ``<dataset>/cache/`` whose name is a hash of the parameters
and of the content it covers (each file's path, size and modification time), so changing the
audio, the images or the parameters gives a new cache instead of stale features.

Caches are derived data: one that cannot be read (truncated, corrupt) is named in one warning line on
stderr and rebuilt in its place. Cache files are written atomically (:mod:`speechvision.core.atomic`), and
the temporaries a killed writer left behind are removed before the next write.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from speechvision.core.atomic import atomic_path, remove_stale_temporaries
from speechvision.core.audio import LogMelConfig, file_log_mel


def content_key(paths: list[Path], params: dict) -> str:
    h = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def read_cache(path: Path, keys: tuple[str, ...],
               fits: Callable[[dict[str, np.ndarray]], bool] = lambda arrays: True) -> dict[str, np.ndarray] | None:
    """The arrays of the cache file ``path``, or None when it is missing or unreadable (truncated, corrupt,
    without one of ``keys`` or, by ``fits``, of the wrong sizes): then one warning line on stderr names the
    file, and the caller rebuilds it."""
    from safetensors.numpy import load_file

    if not path.is_file():
        return None
    try:
        arrays = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - SafetensorError (truncated, bad header) or an OS error
        why = str(e).removeprefix("Error while deserializing header: ") or type(e).__name__
    else:
        missing = [k for k in keys if k not in arrays]
        if not missing and fits(arrays):
            return arrays
        why = f"no array {missing[0]!r}" if missing else "arrays of the wrong size"
    print(f"speechvision: warning: {path}: unreadable cache file ({why}); rebuilding it", file=sys.stderr,
          flush=True)
    return None


def _save_atomic(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    from safetensors.numpy import save_file

    # safetensors writes raw memory: Fortran-ordered arrays (e.g. transposed spectrograms) must be made C-ordered.
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    remove_stale_temporaries(path.parent)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in (metadata or {}).items()})


def _logmel_job(args: tuple[str, LogMelConfig]) -> np.ndarray:
    path, cfg = args
    return file_log_mel(path, cfg).astype(np.float16)


class LogMelCache:
    """All log-mels of a set of audio files as one (sum T, F) float16 array plus offsets.

    ``get(path)`` returns the (T, F) float32 features of one file.
    """

    def __init__(self, paths: list[str], feats: np.ndarray, offsets: np.ndarray):
        self.index = {p: i for i, p in enumerate(paths)}
        self.feats, self.offsets = feats, offsets

    def get(self, path: str) -> np.ndarray:
        i = self.index[path]
        return self.feats[self.offsets[i]:self.offsets[i + 1]].astype(np.float32)

    def length(self, path: str) -> int:
        i = self.index[path]
        return int(self.offsets[i + 1] - self.offsets[i])

    @staticmethod
    def build(root: Path, rel_paths: list[str], config: LogMelConfig = LogMelConfig(), *,
              workers: int | None = None, progress: bool = True) -> "LogMelCache":
        """Load the cache for ``rel_paths`` (relative to ``root`` or absolute), computing it if missing or
        unreadable (see :func:`read_cache`). A computation is saved in parts of ``PART_FILES`` files under
        ``cache/<name>.parts/``, so that a killed build (the Whisper front end over tens of thousands of
        utterances takes about an hour on 2 cores) resumes from its last part."""
        rel_paths = sorted(set(rel_paths))
        files = [root / p for p in rel_paths]
        key = content_key(files, {"kind": "logmel", **asdict(config)})
        path = root / "cache" / f"logmel-{key}.safetensors"
        t = read_cache(path, ("feats", "offsets"),
                       lambda t: len(t["offsets"]) == len(rel_paths) + 1 and t["offsets"][-1] == len(t["feats"]))
        if t is not None:
            return LogMelCache(rel_paths, t["feats"], t["offsets"])
        parts = path.with_suffix(".parts")
        parts.mkdir(parents=True, exist_ok=True)
        workers = workers or os.cpu_count() or 1
        if config.frontend == "whisper":
            workers = 1  # CTranslate2 runs its own threads and does not survive a fork; one process does it
        out = _features_in_parts([(str(f), config) for f in files], parts, workers,
                                 f"{config.frontend} features", progress)
        offsets = np.zeros(len(out) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(f) for f in out])
        feats = np.concatenate(out) if out else np.zeros((0, config.feature_dim), np.float16)
        _save_atomic({"feats": feats, "offsets": offsets}, path, {"paths": rel_paths})
        for f in parts.glob("*.safetensors"):
            f.unlink()
        parts.rmdir()
        return LogMelCache(rel_paths, feats, offsets)


PART_FILES = 2048  # files per saved part of a feature computation


def _features_in_parts(jobs: list[tuple[str, LogMelConfig]], parts: Path, workers: int, desc: str,
                       progress: bool) -> list[np.ndarray]:
    """The (T, F) float16 features of every job, in order; each run of ``PART_FILES`` jobs is read from
    ``parts/<first index>.safetensors`` when a killed build left it there, else computed and saved there."""
    from tqdm import tqdm

    out: list[np.ndarray] = []
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        with tqdm(total=len(jobs), desc=desc, unit="utt", disable=not progress) as bar:
            for start in range(0, len(jobs), PART_FILES):
                chunk = jobs[start:start + PART_FILES]
                part = parts / f"{start:09d}.safetensors"
                t = read_cache(part, ("feats", "offsets"),
                               lambda t, n=len(chunk): len(t["offsets"]) == n + 1 and t["offsets"][-1] == len(t["feats"]))
                if t is None:
                    feats = list(pool.map(_logmel_job, chunk, chunksize=32)) if pool else list(map(_logmel_job, chunk))
                    offsets = np.concatenate([[0], np.cumsum([len(f) for f in feats])]).astype(np.int64)
                    _save_atomic({"feats": np.concatenate(feats), "offsets": offsets}, part)
                else:
                    feats = [t["feats"][a:b] for a, b in zip(t["offsets"][:-1], t["offsets"][1:])]
                out.extend(feats)
                bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def cached_array(root: Path, name: str, files: list[Path], params: dict,
                 compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Return ``compute()``'s array, cached under ``root/cache`` keyed by ``files`` and ``params`` (computed
    again when the cache file is missing or unreadable, see :func:`read_cache`)."""
    key = content_key(files, {"kind": name, **params})
    path = root / "cache" / f"{name}-{key}.safetensors"
    cached = read_cache(path, ("data",))
    if cached is not None:
        return cached["data"]
    path.parent.mkdir(parents=True, exist_ok=True)
    data = compute()
    _save_atomic({"data": data}, path)
    return data
