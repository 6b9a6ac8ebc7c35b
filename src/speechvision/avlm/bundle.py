"""The bundled AVLM stack (issue 20): tokenizer, unit vocoder and dialogue model (whose speech LM it holds),
plus a few demo clips, inside the package so that `speechvision avlm demo` and the web page's second tab run
offline with nothing to train first. Weights only, at most ``MAX_BUNDLE_MB``.

Layout of ``speechvision/assets/avlm`` (or any folder ``export_stack`` writes)::

    bundle.json            {"version", "synthetic": true, "label", "sources": {...}, "clips": [...], "bytes"}
    tokenizer.json         the expressive tokenizer (speechvision.avlm.tokens)
    tokenizer.safetensors
    vocoder.pt             the unit vocoder checkpoint (weights and config)
    dialogue.pt            the dialogue AVLM checkpoint (weights, config and its speech LM's config)
    clips/<id>.mp4         short face videos with speech (a real face photo animated by a synthetic clip's
                           landmarks, and that clip's synthetic speech)

Everything in it is trained on the project's SYNTHETIC corpora (docs/avlm.md); ``bundle.json`` says so and
the demo prints it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechvision.avlm.model import AVLMError

BUNDLE_VERSION = 1
MAX_BUNDLE_MB = 40.0
LABEL = ("trained on SYNTHETIC data: synthetic speech whose emotions are prosody profiles and synthetic face "
         "landmarks (docs/avlm.md); not a model of real emotional speech")
FILES = ("tokenizer.json", "tokenizer.safetensors", "vocoder.pt", "dialogue.pt")


def bundled_stack_dir() -> Path:
    """The folder of the stack shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "assets" / "avlm"


@dataclass
class AVLMStack:
    """A loaded stack: ``speaker`` (tokenizer + vocoder), ``model`` (the dialogue AVLM, eval mode), ``meta``
    (bundle.json) and ``root``."""

    root: Path
    meta: dict
    speaker: object  # speechvision.avlm.vocoder.UnitVocoder
    model: object  # speechvision.avlm.model.AVLM

    @property
    def tok(self):
        return self.speaker.tok

    def clips(self) -> list[dict]:
        """The demo clips: bundle.json's rows with ``video`` as an absolute path."""
        return [{**c, "video": str(self.root / c["video"])} for c in self.meta.get("clips", [])]


def load_stack(root: str | Path | None = None) -> AVLMStack:
    """Load a stack folder (default: the bundled one).

    Raises:
        AVLMError: the folder or one of its files is missing, or it is another bundle version.
    """
    from speechvision.avlm.model import load_avlm
    from speechvision.avlm.vocoder import UnitVocoder

    root = Path(root) if root is not None else bundled_stack_dir()
    meta_path = root / "bundle.json"
    if not meta_path.is_file():
        raise AVLMError(f"{meta_path}: missing; no AVLM stack there (export one with "
                        "`python scripts/build_avlm_bundle.py`, docs/avlm.md)")
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != BUNDLE_VERSION:
        raise AVLMError(f"{meta_path}: bundle version {meta.get('version')}, this speechvision reads version "
                        f"{BUNDLE_VERSION}")
    for name in FILES:
        if not (root / name).is_file():
            raise AVLMError(f"{root / name}: missing from the AVLM stack")
    speaker = UnitVocoder.load(root, root)
    return AVLMStack(root, meta, speaker, load_avlm(root / "dialogue.pt", speaker.tok.vocab))


def folder_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file()) / 2 ** 20


def export_stack(tokens_dir: str | Path, vocoder_dir: str | Path, dialogue_model: str | Path, out: str | Path, *,
                 clips: list[dict], sources: dict | None = None, force: bool = False) -> dict:
    """Write a stack folder from trained parts and prepared clips.

    Args:
        tokens_dir: ``speechlm tokenize`` folder; vocoder_dir: ``speechlm vocoder`` folder;
        dialogue_model: ``dialogue.pt`` of ``avlm train --task dialogue``.
        clips: rows {"id", "video" (an .mp4 to copy), "text", "emotion", ...}; other keys are kept.
        sources: what the parts were trained from (commands, runs), recorded in bundle.json.
    Returns:
        bundle.json's content.
    Raises:
        AVLMError: a part is missing, ``out`` holds files and ``force`` is off, or the stack is over
            ``MAX_BUNDLE_MB`` (then ``out`` is left without bundle.json, so it does not load).
    """
    tokens_dir, vocoder_dir, out = Path(tokens_dir), Path(vocoder_dir), Path(out)
    parts = {"tokenizer.json": tokens_dir / "tokenizer.json", "tokenizer.safetensors": tokens_dir / "tokenizer.safetensors",
             "vocoder.pt": vocoder_dir / "vocoder.pt", "dialogue.pt": Path(dialogue_model)}
    for name, src in parts.items():
        if not src.is_file():
            raise AVLMError(f"{src}: missing ({name} of the stack)")
    if out.exists() and any(out.iterdir()) and not force:
        raise AVLMError(f"{out}: holds files already; pass force=True (--force) to replace the stack")
    if out.exists():
        shutil.rmtree(out)
    (out / "clips").mkdir(parents=True)
    for name, src in parts.items():
        shutil.copyfile(src, out / name)
    rows = []
    for c in clips:
        dst = Path("clips") / f"{c['id']}.mp4"
        shutil.copyfile(c["video"], out / dst)
        rows.append({**c, "video": str(dst)})
    size = folder_mb(out)
    if size > MAX_BUNDLE_MB:
        raise AVLMError(f"{out}: the stack is {size:.1f} MB, over the {MAX_BUNDLE_MB:.0f} MB budget")
    meta = {"version": BUNDLE_VERSION, "synthetic": True, "label": LABEL, "sources": sources or {},
            "clips": rows, "megabytes": round(size, 2)}
    (out / "bundle.json").write_text(json.dumps(meta, indent=2))
    return meta


def demo_clips(av_dir: str | Path, out: str | Path, *, per_emotion: int = 1, seed: int = 0,
               emotions: tuple[str, ...] | None = None) -> list[dict]:
    """Face videos with speech for the demo, one or more per emotion from the av-emotion TEST split (held-out
    voices): a real face photo (scikit-image's astronaut) animated by the clip's synthetic landmarks
    (``media.animate_photo``), with the clip's speech as the sound track.

    Only question clips whose audio carries the clip's emotion (not the "ambiguous" ones) are drawn, seeded,
    for each of ``emotions`` (default: all four).

    Returns:
        rows {"id", "video", "text", "emotion", "voice", "source_clip"}.
    Raises:
        AVLMError: the split lacks a clip of some emotion.
    """
    from speechvision.avlm.data.av_emotion import load_av_emotion
    from speechvision.avlm.data.spoken_emotion import EMOTIONS
    from speechvision.avlm.face import FPS, FaceAnalyzer
    from speechvision.avlm.media import animate_photo, write_video
    from speechvision.core.audio import load_audio

    photo, photo_lms = real_face_photo(FaceAnalyzer())
    _, rows, faces = load_av_emotion(av_dir, "test")
    rng = np.random.default_rng(seed)
    out = Path(out)
    picked = []
    for emotion in emotions or EMOTIONS:
        pool = sorted((r for r in rows if r["emotion"] == emotion and not r["ambiguous"] and r["role"] == "question"),
                      key=lambda r: r["id"])
        if len(pool) < per_emotion:
            raise AVLMError(f"{av_dir}: the test split has {len(pool)} clear {emotion} question clips, "
                            f"{per_emotion} wanted")
        for i in rng.choice(len(pool), per_emotion, replace=False):
            r = pool[int(i)]
            frames = animate_photo(photo, photo_lms, faces[r["id"]])
            wave = load_audio(r["audio"], sample_rate_hz=16000)
            video = write_video(out / f"{r['id']}.mp4", frames, FPS, wave, 16000)
            picked.append({"id": r["id"], "video": str(video), "text": r["text"], "emotion": emotion,
                           "voice": r["voice"], "source_clip": r["id"]})
    return picked


def real_face_photo(analyzer) -> tuple[np.ndarray, np.ndarray]:
    """(photo (256, 256, 3) uint8, its (68, 2) landmarks): the face of scikit-image's astronaut (Eileen
    Collins, NASA, public domain), the real face that ships offline with scikit-image.

    Raises:
        AVLMError: dlib finds no face in it (a broken install).
    """
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:256, 64:320])
    lms = analyzer.landmarks(photo)
    if lms is None:
        raise AVLMError("dlib found no face in scikit-image's astronaut photo; check the dlib install")
    return photo, lms
