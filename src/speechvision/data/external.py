"""Readers for the paper's datasets: CUB-200-2011, Oxford-102 and Flickr8k (with spoken captions).

None of these ship with speechvision; each reader takes the folder a user downloaded and writes a
speechvision dataset folder (``dataset.json`` + ``manifest.jsonl``) to ``out``.

Expected layouts (the published file names):

* CUB: ``CUB_200_2011/{images.txt, bounding_boxes.txt, images/<class>/<img>.jpg}``,
  Reed et al. captions ``text_c10/<class>/<img>.txt`` (10 lines), class split
  ``trainvalclasses.txt`` / ``testclasses.txt`` (150 / 50 classes), S2IGAN audio
  ``audio/<class>/<img>/<k>.wav`` (optional: without it, captions are synthesised).
* Oxford-102: ``jpg/image_XXXXX.jpg``, ``text_c10/class_XXXXX/image_XXXXX.txt``,
  ``trainvalclasses.txt`` / ``testclasses.txt`` (82 / 20), audio as CUB (optional).
* Flickr8k: ``Flicker8k_Dataset/<img>.jpg``, ``Flickr8k.token.txt``, the split lists
  ``Flickr_8k.{trainImages,devImages,testImages}.txt`` (Karpathy's splits), and the Flickr Audio
  Caption Corpus ``flickr_audio/{wavs/, wav2capt.txt}``; every image is its own class.
"""

from __future__ import annotations

from pathlib import Path

from speechvision.core.tts import DEFAULT_VOICE, TRAIN_VOICES, SynthesisJob, synthesize_many
from speechvision.data.manifest import Caption, DatasetError, Record, write_dataset
from speechvision.data.spoken_fashion import audio_relpath, begin_build


def _need(path: Path, hint: str = "") -> Path:
    if not path.exists():
        raise DatasetError(f"{path}: missing{'; ' + hint if hint else ''}")
    return path


def _read_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in _need(path).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]


def _class_split(root: Path) -> tuple[set[str], set[str]]:
    hint = "the class split files of Reed et al. (cvpr2016 data) belong next to text_c10/"
    train = set(_read_lines(_need(root / "trainvalclasses.txt", hint)))
    test = set(_read_lines(_need(root / "testclasses.txt", hint)))
    return train, test


def crop_cub(image, bbox: tuple[float, float, float, float]):
    """Crop a PIL image to the square of half-size 0.75 * max(w, h) around the bird box centre
    (StackGAN/S2IGAN ``get_imgs``), clipped to the image."""
    x, y, w, h = bbox
    r = int(max(w, h) * 0.75)
    cx, cy = int(x + w / 2), int(y + h / 2)
    W, H = image.size
    return image.crop((max(0, cx - r), max(0, cy - r), min(W, cx + r), min(H, cy + r)))


def _captions(root: Path, cls: str, stem: str, n: int, voice_cycle: bool, out: Path,
              jobs: dict[str, SynthesisJob]) -> list[Caption]:
    texts = _read_lines(root / "text_c10" / cls / f"{stem}.txt")[:n]
    caps = []
    for k, text in enumerate(texts):
        wav = root / "audio" / cls / stem / f"{k}.wav"
        if wav.is_file():
            caps.append(Caption(text=text, audio=str(wav.resolve()), voice="dataset"))
        else:
            voice = TRAIN_VOICES[k % len(TRAIN_VOICES)] if voice_cycle else DEFAULT_VOICE
            rel = audio_relpath(text, voice)
            jobs[rel] = SynthesisJob(text, voice, str(out / rel))
            caps.append(Caption(text=text, audio=rel, voice=voice.id))
    return caps


def build_reed(kind: str, root: str | Path, out: str | Path, *, synthesize: bool = True,
               voice_cycle: bool = True, workers: int | None = None, progress: bool = True,
               force: bool = False) -> Path:
    """Build CUB (``kind='cub'``) or Oxford-102 (``kind='oxford'``) from a downloaded folder.

    Missing audio files are synthesised (when ``synthesize``) into ``out/audio``. A rerun of the same options
    resumes; ``force`` is needed to build over another dataset or build (see
    :func:`~speechvision.data.spoken_fashion.begin_build`).

    Raises:
        DatasetError: a required file is missing (named in the message), or ``out`` holds another dataset or
            build (without ``force``).
    """
    from PIL import Image
    from tqdm import tqdm

    root, out = Path(root), Path(out)
    _need(root, f"download {kind.upper()} first")
    train_cls, test_cls = _class_split(root)
    items: list[tuple[str, str, Path, tuple | None]] = []  # class dir, stem, image path, bbox
    if kind == "cub":
        base = _need(root / "CUB_200_2011", "the CUB-200-2011 archive extracts to CUB_200_2011/")
        paths = dict(ln.split(" ", 1) for ln in _read_lines(base / "images.txt"))
        boxes = {ln.split()[0]: tuple(map(float, ln.split()[1:5])) for ln in _read_lines(base / "bounding_boxes.txt")}
        for img_id, rel in paths.items():
            cls, fname = rel.split("/")
            items.append((cls, Path(fname).stem, base / "images" / rel, boxes.get(img_id)))
    elif kind == "oxford":
        for cls_dir in sorted(p for p in _need(root / "text_c10").iterdir() if p.is_dir()):
            for txt in sorted(cls_dir.glob("*.txt")):
                items.append((cls_dir.name, txt.stem, root / "jpg" / f"{txt.stem}.jpg", None))
    else:
        raise DatasetError(f"unknown dataset kind '{kind}'")
    keep = begin_build(out, {"dataset": kind, "root": str(root.resolve()), "synthesize": synthesize,
                             "voice_cycle": voice_cycle}, force=force, kind=f"{kind} dataset")
    classes = sorted({c for c, *_ in items})
    records, jobs = [], {}
    (out / "images").mkdir(parents=True, exist_ok=True)
    for cls, stem, img_path, bbox in tqdm(items, desc=f"reading {kind}", unit="img", disable=not progress):
        if cls not in train_cls and cls not in test_cls:
            continue
        _need(img_path)
        if bbox is not None:
            rel_img = f"images/{cls}/{stem}.jpg"
            if not (keep and (out / rel_img).is_file()):
                (out / rel_img).parent.mkdir(parents=True, exist_ok=True)
                crop_cub(Image.open(img_path).convert("RGB"), bbox).save(out / rel_img, quality=95)
        else:
            rel_img = str(img_path.resolve())
        caps = _captions(root, cls, stem, 10, voice_cycle, out, jobs)
        if not synthesize:
            caps = [Caption(c.text, c.audio if c.voice == "dataset" else None, c.voice) for c in caps]
        records.append(Record(id=f"{kind}-{stem}", image=rel_img, split="train" if cls in train_cls else "test",
                              class_id=classes.index(cls), class_name=cls, captions=caps))
    if synthesize and jobs:
        synthesize_many(jobs.values(), workers=workers, progress=progress)
    write_dataset(out, {"name": kind, "classes": classes, "source": str(root.resolve())}, records)
    return out


def build_flickr8k(root: str | Path, out: str | Path, *, progress: bool = True, force: bool = False) -> Path:
    """Build Flickr8k with the Flickr Audio Caption Corpus (5 natural spoken captions per image).

    Raises:
        DatasetError: a required file is missing (named in the message), or ``out`` holds another dataset or
            build (without ``force``).
    """
    root, out = Path(root), Path(out)
    img_dir = _need(root / "Flicker8k_Dataset", "the Flickr8k image archive extracts to Flicker8k_Dataset/")
    begin_build(out, {"dataset": "flickr8k", "root": str(root.resolve())}, force=force, kind="flickr8k dataset")
    texts: dict[tuple[str, int], str] = {}
    for ln in _read_lines(root / "Flickr8k.token.txt"):
        key, text = ln.split("\t", 1)
        name, k = key.split("#")
        texts[(name, int(k))] = text
    audio_dir = root / "flickr_audio"
    spoken: dict[str, list[tuple[int, str]]] = {}
    for ln in _read_lines(audio_dir / "wav2capt.txt"):
        wav, name, k = ln.split()
        spoken.setdefault(name, []).append((int(k.lstrip("#")), wav))
    split_files = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
                   "test": "Flickr_8k.testImages.txt"}
    records = []
    for split, fname in split_files.items():
        for name in _read_lines(root / fname):
            caps = [Caption(text=texts.get((name, k), ""), audio=str((audio_dir / "wavs" / wav).resolve()),
                            voice="flickr-audio") for k, wav in sorted(spoken.get(name, []))]
            records.append(Record(id=f"flickr8k-{Path(name).stem}", image=str((img_dir / name).resolve()),
                                  split=split, class_id=len(records), class_name=Path(name).stem, captions=caps))
    write_dataset(out, {"name": "flickr8k", "classes": [r.class_name for r in records],
                        "class_relevance": False, "source": str(root.resolve())}, records)
    return out
