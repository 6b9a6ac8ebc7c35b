"""`speechvision data av-emotion`: a SYNTHETIC audio-visual emotion set built on the spoken-emotion corpus.

No real audio-visual emotion corpus can be had offline here, so this set pairs every spoken-emotion
utterance with a synthetic face-landmark sequence at 25 fps (the 68-point layout of ``speechvision.avlm.face``):

- a per-speaker face (``CANONICAL_68`` plus fixed identity offsets and size, seeded by the voice name);
- an emotion-specific expression (a displacement template per class: happy raises and widens the mouth
  corners, angry lowers and draws in the brows and narrows the eyes, sad raises the inner brows and lowers
  the mouth corners, neutral none) scaled by a random per-clip intensity (uniform 0.25-1.0) that wavers
  slowly during the clip;
- jaw and lower lip opening driven by the speech energy (RMS per 40 ms frame of the clip's audio);
- blinks, in-plane pose jitter (rotation, scale, translation as slow random walks) and landmark noise.

Ambiguous audio: in a known fraction of clips (``ambiguous_fraction``, 0.3 by default) the audio is the
same sentence and role spoken with the NEUTRAL prosody profile, while the face shows the clip's emotion,
so the audio carries no emotion cue there ("flat affect"). ``manifest.jsonl`` marks them
(``ambiguous``) and names the recording used (``audio_id``, ``audio_emotion``). Splits, dialogues and
held-out test voices are the speech corpus's.

Its results are results on synthetic data and are never presented as real-world results.

Layout::

    dataset.json       {"name": "av-emotion", "synthetic": true, "fps": 25, "frame_size_px": 96,
                        "ambiguous_fraction": 0.3, "speech": <spoken-emotion folder>, "splits": {...}, ...}
    manifest.jsonl     {"id", "split", "emotion", "audio_id", "audio", "audio_emotion", "ambiguous",
                        "intensity", "voice", "dialogue", "role", "text", "frames"}
    faces.safetensors  id -> (T, 68, 2) float32 landmark pixel coordinates in a 96 x 96 frame
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from speechvision.avlm.data.spoken_emotion import EMOTIONS, load_corpus
from speechvision.avlm.face import CANONICAL_68, FPS, PARTS
from speechvision.core.atomic import atomic_write_text
from speechvision.data.manifest import DatasetError

FORMAT_VERSION = 1
FRAME_SIZE_PX = 96


def _templates() -> dict[str, np.ndarray]:
    """(68, 2) expression displacement per emotion at full intensity, inter-ocular units, y down."""
    t = {e: np.zeros((68, 2), np.float32) for e in EMOTIONS}
    h = t["happy"]
    h[[48], :] += [-0.08, -0.10]
    h[[54], :] += [0.08, -0.10]
    h[[49, 59, 60], 1] -= 0.05
    h[[53, 55, 64], 1] -= 0.05
    h[[40, 41, 46, 47], 1] -= 0.03  # cheeks push the lower lids up
    a = t["angry"]
    a[17:27, 1] += 0.08
    a[[20, 21], :] += [[0.04, 0.08], [0.06, 0.10]]
    a[[22, 23], :] += [[-0.06, 0.10], [-0.04, 0.08]]
    a[[37, 38, 43, 44], 1] += 0.035
    a[[50, 51, 52, 61, 62, 63], 1] += 0.03  # lips pressed
    a[[56, 57, 58, 65, 66, 67], 1] -= 0.03
    s = t["sad"]
    s[[20, 21, 22, 23], 1] -= 0.12
    s[[17, 26], 1] += 0.05
    s[[48, 54], 1] += 0.09
    s[[59, 55], 1] += 0.04
    s[[37, 38, 43, 44], 1] += 0.02
    return t


TEMPLATES = _templates()
JAW_POINTS = {6: 0.5, 7: 0.8, 8: 1.0, 9: 0.8, 10: 0.5, 56: 1.0, 57: 1.0, 58: 1.0, 55: 0.6, 59: 0.6,
              65: 0.9, 66: 0.9, 67: 0.9}


@dataclass
class AVBuildConfig:
    ambiguous_fraction: float = 0.3
    seed: int = 0
    intensity_range: tuple = (0.25, 1.0)
    jaw_opening: float = 0.22  # inter-ocular units at full speech energy
    pose_degrees: float = 8.0
    noise: float = 0.012  # landmark noise, inter-ocular units


def speech_energy(wave: np.ndarray, sample_rate_hz: int, n_frames: int, fps: float = FPS) -> np.ndarray:
    """(n_frames,) RMS energy per video frame, scaled so the 95th percentile is 1 (librosa RMS)."""
    import librosa

    hop = int(round(sample_rate_hz / fps))
    rms = librosa.feature.rms(y=wave.astype(np.float32), frame_length=2 * hop, hop_length=hop)[0]
    rms = np.concatenate([rms, np.zeros(max(0, n_frames - len(rms)))])[:n_frames]
    return np.clip(rms / max(np.percentile(rms, 95), 1e-6), 0, 1.5).astype(np.float32)


def _walk(rng: np.random.DSG, n: int, step: float, limit: float) -> np.ndarray:
    x, out = 0.0, np.empty(n)
    for i in range(n):
        x = float(np.clip(0.95 * x + rng.normal(0, step), -limit, limit))
        out[i] = x
    return out


def identity(voice: str) -> tuple[np.ndarray, float]:
    """(68, 2) identity offsets and the inter-ocular distance in pixels of a speaker's face (seeded by name)."""
    seed = int(hashlib.sha1(voice.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, 0.025, (68, 2)).astype(np.float32)
    offsets[36:48] = offsets[36:48].mean(0)  # eyes keep their shape
    return offsets, float(rng.uniform(17.0, 22.0))


def face_sequence(emotion: str, intensity: float, energy: np.ndarray, voice: str, rng: np.random.DSG,
                  config: AVBuildConfig = AVBuildConfig()) -> np.ndarray:
    """(T, 68, 2) float32 landmark pixels in a 96 x 96 frame for one clip (T = len(energy))."""
    n = len(energy)
    offsets, iod = identity(voice)
    base = CANONICAL_68 + offsets
    level = intensity * (1 + 0.15 * _walk(rng, n, 0.2, 1.0))
    frames = base[None] + level[:, None, None] * TEMPLATES[emotion][None]
    for idx, w in JAW_POINTS.items():
        frames[:, idx, 1] += config.jaw_opening * w * energy
    blink = np.zeros(n)
    t = int(rng.integers(5, 60))
    while t < n:
        blink[t:t + 3] = [0.6, 1.0, 0.6][:len(blink[t:t + 3])]
        t += int(rng.integers(40, 100))
    for up, low in ((37, 41), (38, 40), (43, 47), (44, 46)):
        frames[:, up, 1] += blink * (frames[:, low, 1] - frames[:, up, 1]) * 0.9
    frames += rng.normal(0, config.noise, frames.shape)
    ang = np.deg2rad(_walk(rng, n, config.pose_degrees / 6, config.pose_degrees))
    scale = iod * (1 + 0.05 * _walk(rng, n, 0.2, 1.0))
    shift = np.stack([_walk(rng, n, 0.8, 4.0), _walk(rng, n, 0.8, 4.0)], 1) + [FRAME_SIZE_PX / 2, FRAME_SIZE_PX * 0.42]
    c, s = np.cos(ang), np.sin(ang)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2) * scale[:, None, None]  # (T, 2, 2)
    out = np.einsum("tij,tkj->tki", rot, frames) + shift[:, None, :]
    return out.astype(np.float32)


def render_face(landmarks: np.ndarray, size: int = FRAME_SIZE_PX) -> np.ndarray:
    """(size, size) uint8 line drawing of one frame's (68, 2) landmarks (the synthetic set's video frame)."""
    import cv2

    img = np.zeros((size, size), np.uint8)
    for name, idx in PARTS.items():
        pts = np.round(landmarks[list(idx)] * 4).astype(np.int32)[None]
        cv2.polylines(img, pts, name in ("eye_r", "eye_l", "lip_out", "lip_in"), 255, 1, cv2.LINE_AA, shift=2)
    return img


def build_av_emotion(speech: str | Path, out: str | Path, config: AVBuildConfig = AVBuildConfig(), *,
                     progress: bool = True, force: bool = False) -> Path:
    """Build the set in ``out`` from a built spoken-emotion corpus ``speech`` (deterministic in the seed).
    ``force`` is needed to build over another set or build (see
    :func:`~speechvision.data.spoken_fashion.begin_build`); the same options rebuild the same set.

    Raises:
        EmotionCorpusError: ``speech`` is not a built spoken-emotion corpus.
        DatasetError: a bad ``ambiguous_fraction``, or an ``out`` that is a file or holds another set or
            build (without ``force``).
    """
    from speechvision.data.spoken_fashion import begin_build

    from safetensors.numpy import save_file
    from tqdm import tqdm

    from speechvision.core.audio import load_audio

    if not 0 <= config.ambiguous_fraction <= 1:
        raise DatasetError(f"ambiguous_fraction must be in [0, 1], got {config.ambiguous_fraction}")
    speech, out = Path(speech).resolve(), Path(out)
    meta_s, rows = load_corpus(speech)
    begin_build(out, {"dataset": "av-emotion", "speech": str(speech), **asdict(config)}, force=force,
                kind="av-emotion set")
    by_key = {(r["dialogue"], r["role"], r["emotion"]): r for r in rows}
    rng = np.random.default_rng(config.seed)
    clips, faces = [], {}
    for r in tqdm(rows, desc="av-emotion faces", unit="clip", disable=not progress):
        ambiguous = bool(rng.random() < config.ambiguous_fraction)
        audio_row = by_key[(r["dialogue"], r["role"], "neutral")] if ambiguous else r
        wave = load_audio(speech / audio_row["audio"], sample_rate_hz=meta_s["sample_rate_hz"])
        n = max(1, int(np.ceil(len(wave) / meta_s["sample_rate_hz"] * FPS)))
        intensity = float(rng.uniform(*config.intensity_range))
        energy = speech_energy(wave, meta_s["sample_rate_hz"], n)
        clip_id = f"av-{r['id'][3:]}"
        faces[clip_id] = face_sequence(r["emotion"], intensity, energy, audio_row["voice"], rng, config)
        clips.append({"id": clip_id, "split": r["split"], "emotion": r["emotion"], "audio_id": audio_row["id"],
                      "audio": str(speech / audio_row["audio"]), "audio_emotion": audio_row["emotion"],
                      "ambiguous": ambiguous, "intensity": round(intensity, 4), "voice": audio_row["voice"],
                      "dialogue": r["dialogue"], "role": r["role"], "text": r["text"], "frames": n})
    out.mkdir(parents=True, exist_ok=True)
    save_file(faces, str(out / "faces.safetensors.tmp"))
    (out / "faces.safetensors.tmp").replace(out / "faces.safetensors")
    meta = {"name": "av-emotion", "format_version": FORMAT_VERSION, "synthetic": True, "fps": FPS,
            "frame_size_px": FRAME_SIZE_PX, "speech": str(speech), "emotions": list(EMOTIONS),
            "config": asdict(config),
            "splits": {s: sum(c["split"] == s for c in clips) for s in ("train", "val", "test")},
            "ambiguous": {s: sum(c["ambiguous"] for c in clips if c["split"] == s) for s in ("train", "val", "test")}}
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(c) + "\n" for c in clips))
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=2))
    return out


def load_av_emotion(root: str | Path, split: str | None = None) -> tuple[dict, list[dict], dict]:
    """(dataset.json, clip rows, id -> (T, 68, 2) landmarks) of a built set, optionally one split.

    Raises:
        DatasetError: a missing file or another format version.
    """
    from safetensors.numpy import load_file

    root = Path(root)
    for name in ("dataset.json", "manifest.jsonl", "faces.safetensors"):
        if not (root / name).is_file():
            raise DatasetError(f"{root / name}: missing; build the set with "
                               f"`speechvision data av-emotion --speech data/spoken-emotion --out {root}`")
    meta = json.loads((root / "dataset.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{root / 'dataset.json'}: format {meta.get('format_version')}, expected {FORMAT_VERSION}")
    rows = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if split is None or r["split"] == split]
    faces = load_file(str(root / "faces.safetensors"))
    return meta, rows, {r["id"]: faces[r["id"]] for r in rows}
