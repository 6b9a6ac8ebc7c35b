"""Build the built-in spoken-fashion dataset from Fashion-MNIST (MIT licence).

Each 28x28 image is upsampled to 64x64 (bicubic) and colourised on white with
``pixel = 255 - a * (255 - colour)``, ``a`` the intensity in [0, 1] and ``colour`` from
:data:`~speechvision.data.captions.PALETTE`. Every image gets 10 spoken captions naming its garment
and colour. Splits are by image: train/val from Fashion-MNIST's training images, test and
``test_unseen`` from its test images; ``test_unseen`` holds only the 8 garment-colour combinations
that never appear in train/val/test (one per colour, each a different garment). Held-out voices
speak only test captions.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechvision.core.atomic import remove_stale_temporaries
from speechvision.core.images import save_png
from speechvision.core.tts import (
    ALL_VOICES,
    HELDOUT_VOICES,
    TRAIN_VOICES,
    SynthesisJob,
    Voice,
    check_training_voices,
    synthesize_many,
    voice_pool,
)
from speechvision.data.captions import COLOURS, FASHION_CLASSES, GRAMMARS, PALETTE, caption_pool
from speechvision.data.manifest import Caption, DatasetError, Record, write_dataset

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGE_SIZE = 64
CAPTIONS_PER_IMAGE = 10


def heldout_combinations() -> list[tuple[int, int]]:
    """The 8 (garment, colour) combinations of ``test_unseen``: colour i with garment (3i + 1) mod 10."""
    return [((3 * c + 1) % len(FASHION_CLASSES), c) for c in range(len(COLOURS))]


def class_id(garment: int, colour: int) -> int:
    """Class id of a garment-colour combination (80 classes)."""
    return garment * len(COLOURS) + colour


def class_names() -> list[str]:
    return [f"{COLOURS[c]} {FASHION_CLASSES[g]}" for g in range(len(FASHION_CLASSES)) for c in range(len(COLOURS))]


def read_idx(path: Path) -> np.ndarray:
    """Read a gzip'd IDX file (the Fashion-MNIST/MNIST format) into a uint8 array."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable gzip IDX file ({e})") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: truncated IDX file ({body.size} of {int(np.prod(dims))} bytes)")
    return body.reshape(dims)


def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return ``{"train": (images (60000, 28, 28) uint8, labels (60000,)), "test": ...}``.

    Raises:
        DatasetError: a file is missing, with the apt command that installs it.
    """
    root = Path(root)
    out = {}
    for split, (img_name, lab_name) in IDX_FILES.items():
        for name in (img_name, lab_name):
            if not (root / name).is_file():
                raise DatasetError(f"{root / name}: missing; install Fashion-MNIST with "
                                   "`sudo apt-get install -y dataset-fashion-mnist` or pass --fashion-mnist DIR")
        images, labels = read_idx(root / img_name), read_idx(root / lab_name)
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{root / img_name}: {images.shape[0]} images but {labels.shape[0]} labels")
        out[split] = (images, labels)
    return out


def colourise(image28: np.ndarray, colour: tuple[int, int, int], size: int = IMAGE_SIZE) -> np.ndarray:
    """(28, 28) uint8 intensity -> (size, size, 3) uint8 RGB on white."""
    from PIL import Image

    up = Image.fromarray(image28).resize((size, size), Image.BICUBIC)
    a = np.asarray(up, dtype=np.float32)[..., None] / 255.0
    rgb = 255.0 - a * (255.0 - np.asarray(colour, dtype=np.float32))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def audio_relpath(text: str, voice: Voice) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
    return f"audio/{voice.id}/{digest}.wav"


@dataclass
class BuildConfig:
    """Build options of spoken-fashion (defaults give about 12,000/1,000/2,000 + 1,000 images)."""

    images: int = 15000
    unseen_images: int | None = None  # default: images / 15 (at least 16)
    captions_per_combo: int = 12
    seed: int = 0
    synthesize: bool = True
    workers: int | None = None
    train_voices: tuple[str, ...] | None = None  # voice ids; default: tts.TRAIN_VOICES
    heldout_voices: tuple[str, ...] | None = None  # default: tts.HELDOUT_VOICES
    grammar: str = "v1"  # caption grammar: v1 (24 templates) or v2 (+14 templates as people talk; issue 17)
    voices: str = "default"  # train voices: default (tts.TRAIN_VOICES) or broad (+ the kept voice pool; issue 17)
    voices_per_caption: int = 8  # broad: each caption text is spoken by its own subset of this many train voices


# Options added after builds existed: recorded in build.json only when not at their default, so that an
# earlier build still resumes under the same options.
LATER_OPTIONS = {"grammar": "v1", "voices": "default", "voices_per_caption": 8}


BUILD_FILE = "build.json"  # the options a dataset folder is being (or was) built with


def begin_build(out: Path, build: dict, *, force: bool = False, kind: str = "dataset") -> bool:
    """Claim the folder ``out`` for a build of ``kind`` (e.g. "spoken-fashion dataset") with the options
    ``build`` (JSON-able; its ``"dataset"`` names the builder) and record them in ``out/build.json``; returns
    whether files already there may be kept (the same options: a resume).

    A build of the same options resumes (or repairs) the earlier one. Unless ``force``, a build is refused
    where it would replace a complete dataset or an unfinished build of other options, or write into a
    folder that holds something else. The temporaries of atomic writes that a killed build left in ``out``
    (:func:`~speechvision.data.cache.remove_stale_temporaries`) are removed before it goes on; every file a build keeps
    was written atomically, so a kill leaves no half-written image, audio or manifest under its own name.

    Raises:
        DatasetError: ``out`` is a file, or (without ``force``) holds another build or other files; the
            message names the folder and what to do.
    """
    import json

    from speechvision.core.atomic import atomic_write_text

    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            raise DatasetError(f"--out {out}: {path} is a file; --out takes a folder")
    build = json.loads(json.dumps(build))  # as it reads back (tuples become lists)
    earlier = None
    if (out / BUILD_FILE).is_file():
        try:
            earlier = json.loads((out / BUILD_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            earlier = {}
    same = earlier == build
    remove_stale_temporaries(out, names="build.tmp*.json")  # a build killed while it wrote build.json
    if not force and not same and out.is_dir() and any(out.iterdir()):
        raise DatasetError(f"--out {out}: {held_build(out, build, earlier, kind)}")
    if earlier is not None:  # a build folder: what a killed build left half-written (never read)
        remove_stale_temporaries(out, recursive=True)
    if not same:
        atomic_write_text(out / BUILD_FILE, json.dumps(build, indent=2, sort_keys=True))
    return same


def held_build(out: Path, build: dict, earlier: dict | None, kind: str) -> str:
    """What the folder ``out`` holds instead of a build of ``build`` (``earlier``: its build.json), and what
    to do: the rest of :func:`begin_build`'s message."""
    if earlier and earlier.get("dataset") != build.get("dataset"):
        return (f"holds a {earlier.get('dataset')} build, not a {kind}; choose another --out, or pass --force to "
                "replace it")
    if (out / "dataset.json").is_file():
        return (f"holds a complete {kind}{' built with other options' if earlier else ''}; pass --force to replace "
                "it, or choose another --out")
    if earlier is not None:
        changed = sorted(k for k in set(build) | set(earlier) if build.get(k) != earlier.get(k))
        return (f"holds an unfinished build with other options ({', '.join(changed)}); rerun it with the same "
                "options to resume it, or pass --force to start over")
    return f"the folder is not empty and holds no {kind}; choose a new or empty --out, or pass --force to build into it"


def voice_subset(text: str, voices: list[Voice], k: int, seed: int) -> list[Voice]:
    """The ``k`` of ``voices`` that speak the caption ``text`` (a function of the text and the build seed)."""
    import hashlib

    rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")])
    return [voices[i] for i in sorted(rng.choice(len(voices), min(k, len(voices)), replace=False))]


def split_sizes(n: int) -> dict[str, int]:
    train = int(round(n * 0.8))
    val = int(round(n / 15))
    return {"train": train, "val": val, "test": n - train - val}


def plan_images(fm: dict, images: int, n_unseen: int, rng: np.random.Generator) -> list[tuple[str, str, int, int, int]]:
    """Which Fashion-MNIST image goes to which split in which colour: (split, source set, source index,
    garment, colour) for ``images`` train/val/test images and ``n_unseen`` test_unseen ones, drawn from ``rng``.

    Raises:
        DatasetError: Fashion-MNIST has too few images for these sizes.
    """
    heldout = heldout_combinations()
    heldout_by_garment = {g: c for g, c in heldout}
    sizes = split_sizes(images)

    def seen_colour(garment: int) -> int:
        choices = [c for c in range(len(COLOURS)) if heldout_by_garment.get(garment) != c]
        return int(rng.choice(choices))

    plan: list[tuple[str, str, int, int, int]] = []
    train_src = rng.permutation(len(fm["train"][1]))
    test_src = rng.permutation(len(fm["test"][1]))
    if sizes["train"] + sizes["val"] > train_src.size or sizes["test"] + n_unseen > test_src.size:
        raise DatasetError(f"--images {images}: Fashion-MNIST has too few images for this size")
    for split, idxs in (("train", train_src[:sizes["train"]]),
                        ("val", train_src[sizes["train"]:sizes["train"] + sizes["val"]]),
                        ("test", test_src[:sizes["test"]])):
        src = "test" if split == "test" else "train"
        for i in idxs:
            g = int(fm[src][1][i])
            plan.append((split, src, int(i), g, seen_colour(g)))
    # test_unseen: cycle through the held-out combinations, taking unused test images of that garment.
    rest = test_src[sizes["test"]:]
    by_garment = {g: [int(i) for i in rest if fm["test"][1][i] == g] for g, _ in heldout}
    for k in range(n_unseen):
        g, c = heldout[k % len(heldout)]
        plan.append(("test_unseen", "test", by_garment[g].pop(), g, c))
    return plan


def build_spoken_fashion(out: str | Path, *, fashion_mnist: str | Path = FASHION_MNIST_DIR,
                         config: BuildConfig = BuildConfig(), progress: bool = True, force: bool = False) -> Path:
    """Build (or finish building) spoken-fashion in ``out`` and return the folder.

    Deterministic under ``config.seed``; a rerun of the same options skips images and audio already
    written (see :func:`begin_build`, which also says when ``force`` is needed).

    Raises:
        DatasetError: Fashion-MNIST missing or unreadable, a size that cannot be honoured, or an ``out`` that
            holds another dataset or build (without ``force``).
        speechvision.core.tts.TTSError: a synthesis engine is missing.
    """
    from dataclasses import asdict

    from tqdm import tqdm

    out = Path(out)
    if config.images < 3:
        raise DatasetError(f"--images {config.images}: need at least 3 images (train, val, test)")
    if config.workers is not None and config.workers < 1:
        raise DatasetError(f"--workers {config.workers}: give 1 or more synthesis processes")
    if config.captions_per_combo < CAPTIONS_PER_IMAGE:
        raise DatasetError(f"--captions-per-combo {config.captions_per_combo}: need at least {CAPTIONS_PER_IMAGE} "
                           f"(each image gets {CAPTIONS_PER_IMAGE} different captions of its combination)")
    fm = load_fashion_mnist(fashion_mnist)
    if config.grammar not in GRAMMARS:
        raise DatasetError(f"--grammar {config.grammar}: choose from {', '.join(GRAMMARS)}")
    if config.voices not in ("default", "broad"):
        raise DatasetError(f"--voices {config.voices}: choose default or broad")
    options = {k: v for k, v in asdict(config).items() if k != "workers" and LATER_OPTIONS.get(k, object()) != v}
    keep = begin_build(out, {"dataset": "spoken-fashion", **options}, force=force, kind="spoken-fashion dataset")
    rng = np.random.default_rng(config.seed)
    heldout = heldout_combinations()
    n_unseen = config.unseen_images if config.unseen_images is not None else max(16, int(round(config.images / 15)))
    # Caption pools per combination (deterministic).
    pools = {(g, c): caption_pool(FASHION_CLASSES[g], COLOURS[c], config.captions_per_combo, rng, config.grammar)
             for g in range(len(FASHION_CLASSES)) for c in range(len(COLOURS))}
    plan = plan_images(fm, config.images, n_unseen, rng)

    train_voices = [ALL_VOICES[v] for v in config.train_voices] if config.train_voices else list(TRAIN_VOICES)
    if config.voices == "broad":
        train_voices += list(voice_pool())
    held_voices = [ALL_VOICES[v] for v in config.heldout_voices] if config.heldout_voices else list(HELDOUT_VOICES)
    check_training_voices(train_voices, "train or validation")  # flite: the held-out engine, test sets only
    all_voices = train_voices + held_voices
    records, jobs, subsets = [], {}, {}  # subsets: caption text -> its voices (--voices broad), drawn once
    (out / "images").mkdir(parents=True, exist_ok=True)
    for n, (split, src, i, g, c) in enumerate(tqdm(plan, desc="rendering images", unit="img", disable=not progress)):
        rel = f"images/{n:06d}.png"
        if not (keep and (out / rel).is_file()):
            save_png(colourise(fm[src][0][i], PALETTE[COLOURS[c]]), out / rel)
        voices = all_voices if split.startswith("test") else train_voices
        texts = rng.choice(pools[(g, c)], size=CAPTIONS_PER_IMAGE, replace=False)
        caps = []
        for text in texts:
            if config.voices == "broad":  # a subset per text keeps the distinct audio files few (and reused)
                if text not in subsets:
                    subsets[text] = voice_subset(str(text), train_voices, config.voices_per_caption, config.seed)
                voices = subsets[text] + (held_voices if split.startswith("test") else [])
            voice = voices[int(rng.integers(len(voices)))]
            audio = audio_relpath(str(text), voice)
            jobs[audio] = SynthesisJob(str(text), voice, str(out / audio))
            caps.append(Caption(text=str(text), audio=audio if config.synthesize else None, voice=voice.id))
        records.append(Record(id=f"sf-{n:06d}", image=rel, split=split, class_id=class_id(g, c),
                              class_name=f"{COLOURS[c]} {FASHION_CLASSES[g]}",
                              attributes={"garment": FASHION_CLASSES[g], "colour": COLOURS[c],
                                          "fashion_mnist": f"{src}/{i}"},
                              captions=caps))
    if config.synthesize:
        synthesize_many(jobs.values(), workers=config.workers, progress=progress)
    meta = {
        "name": "spoken-fashion",
        "classes": class_names(),
        "attributes": {"garment": list(FASHION_CLASSES), "colour": list(COLOURS)},
        "palette": {k: list(v) for k, v in PALETTE.items()},
        "heldout_combinations": [class_names()[class_id(g, c)] for g, c in heldout],
        "voices": [v.to_dict() for v in all_voices],
        "heldout_voices": [v.id for v in held_voices],
        "image_size": IMAGE_SIZE,
        "build": {"images": config.images, "unseen_images": n_unseen, "seed": config.seed,
                  "captions_per_combo": config.captions_per_combo, "distinct_audio_files": len(jobs),
                  "source": "Fashion-MNIST (MIT licence), " + str(fashion_mnist)},
    }
    write_dataset(out, meta, records)
    return out
