"""One manifest format for every dataset: a folder with ``dataset.json`` and ``manifest.jsonl``.

``dataset.json`` (dataset-level facts)::

    {"name": "spoken-fashion", "format_version": 1, "classes": ["red t-shirt", ...],
     "attributes": {"garment": [...], "colour": [...]}, "voices": [{Voice}, ...],
     "heldout_voices": ["espeak-m7", ...], "splits": {"train": 12000, ...}, "build": {...}}

``manifest.jsonl``: one JSON object per image::

    {"id": "sf-000001", "image": "images/000001.png", "split": "train",
     "class_id": 17, "class_name": "red sneaker", "attributes": {"garment": "sneaker", "colour": "red"},
     "captions": [{"text": "a red sneaker", "audio": "audio/espeak-m1/3f2a....wav", "voice": "espeak-m1"}, ...]}

Paths are relative to the dataset folder. Never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speechvision.core.atomic import atomic_write_text
from speechvision.core.errors import SpeechvisionError

FORMAT_VERSION = 1
# The robustness test set (data/robust.py) adds test-only splits.
SPLITS = ("train", "val", "test", "test_unseen", "flite", "phrasing", "flite_degraded", "phrasing_degraded",
          "test_degraded", "test_unseen_degraded")


class DatasetError(SpeechvisionError, ValueError):
    """A dataset folder is missing, malformed or incomplete; the message names the files."""


@dataclass
class Caption:
    text: str
    audio: str | None = None
    voice: str | None = None


@dataclass
class Record:
    id: str
    image: str
    split: str
    class_id: int
    class_name: str
    attributes: dict = field(default_factory=dict)
    captions: list[Caption] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Record":
        return Record(id=d["id"], image=d["image"], split=d["split"], class_id=int(d["class_id"]),
                      class_name=d["class_name"], attributes=dict(d.get("attributes", {})),
                      captions=[Caption(**c) for c in d.get("captions", [])])


def write_dataset(root: str | Path, meta: dict, records: list[Record]) -> None:
    """Write ``dataset.json`` and ``manifest.jsonl`` atomically."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, **meta}
    meta["splits"] = {s: sum(r.split == s for r in records) for s in SPLITS if any(r.split == s for r in records)}
    atomic_write_text(root / "manifest.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in records))
    atomic_write_text(root / "dataset.json", json.dumps(meta, indent=2))


@dataclass
class Dataset:
    """A loaded, validated dataset folder."""

    root: Path
    meta: dict
    records: list[Record]

    def split(self, name: str) -> list[Record]:
        return [r for r in self.records if r.split == name]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def heldout_voices(self) -> set[str]:
        return set(self.meta.get("heldout_voices", []))

    def path(self, rel: str) -> Path:
        return self.root / rel


def load_dataset(root: str | Path, *, check_files: bool = True) -> Dataset:
    """Open and validate a dataset folder.

    Raises:
        DatasetError: no such folder, missing ``dataset.json``/``manifest.jsonl``, a malformed line
            (with its line number), an unknown format version, or missing files (all of them listed
            in one message, the first ten by name).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder (build one with `speechvision data spoken-fashion --out {root}`)")
    for name in ("dataset.json", "manifest.jsonl"):
        if not (root / name).is_file():
            raise DatasetError(f"{root / name}: missing; this is not a speechvision dataset folder")
    try:
        meta = json.loads((root / "dataset.json").read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{root / 'dataset.json'}: not valid JSON ({e})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{root / 'dataset.json'}: format_version {meta.get('format_version')} is not "
                           f"{FORMAT_VERSION}; rebuild the dataset with this version of speechvision")
    records = []
    with open(root / "manifest.jsonl", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = Record.from_dict(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise DatasetError(f"{root / 'manifest.jsonl'}:{lineno}: malformed record ({e})") from None
            if rec.split not in SPLITS:
                raise DatasetError(f"{root / 'manifest.jsonl'}:{lineno}: unknown split '{rec.split}'")
            records.append(rec)
    if not records:
        raise DatasetError(f"{root / 'manifest.jsonl'}: no records")
    if check_files:
        wanted = {r.image for r in records} | {c.audio for r in records for c in r.captions if c.audio}
        missing = sorted(p for p in wanted if not (root / p).is_file())
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise DatasetError(f"{root}: {len(missing)} files listed in manifest.jsonl are missing: {shown}")
    return Dataset(root=root, meta=meta, records=records)
