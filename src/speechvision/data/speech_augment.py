"""Augmented copies of a dataset's training speech (issue 17, item 3), for the SEN to draw from every epoch.

For each distinct caption audio of the train split, ``copies`` augmented copies are written under
``audio/augment/<k>/``, each from its own seed (dataset seed, file, k):

* speed perturbation (Kaldi-style: resampled, so tempo and pitch move together) by a factor in 0.9-1.1;
* with probability 0.5, a pitch shift of up to 3 semitones (audiomentations ``PitchShift``);
* the degradation chain of :mod:`speechvision.data.degrade` (room impulse responses RT60 0.2-1.0 s, white,
  pink or babble noise at 0-30 dB SNR, gain, 8 kHz telephone band, bit-crush, phone surroundings), with babble
  made of other train captions.

``augment.json`` maps each original to its copies. The SEN's training (``data.speech_augment.enabled``) then
shows, each epoch, the clean file with probability ``p_clean`` or one of the copies
(:func:`copy_for_epoch`). Resumable: files already written are kept. Validation and test audio are never
touched, so model selection stays on clean validation speech.

    speechvision data speech-augment --data data/sf --copies 3
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from speechvision.core.atomic import atomic_write_text
from speechvision.core.audio import load_audio, resample
from speechvision.core.tts import write_wav_atomic
from speechvision.data.degrade import stable_seed
from speechvision.data.manifest import DatasetError, load_dataset

AUGMENT_FILE = "augment.json"
RATE_HZ = 22050


def perturb(wave: np.ndarray, sample_rate_hz: int, seed: int) -> np.ndarray:
    """Speed factor 0.9-1.1 (by resampling) and, half of the time, a pitch shift of -3..3 semitones."""
    import audiomentations as A

    from speechvision.data.degrade import seeded_global_random

    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.9, 1.1)
    x = resample(wave, round(sample_rate_hz * speed), sample_rate_hz)  # played at speed x
    if rng.random() < 0.5:
        with seeded_global_random(seed):
            x = A.PitchShift(min_semitones=-3.0, max_semitones=3.0, p=1.0)(samples=x, sample_rate=sample_rate_hz)
    return x.astype(np.float32)


def copy_for_epoch(seed: int, epoch: int, path: str, copies: int, p_clean: float) -> int:
    """Which version of ``path`` training ``epoch`` shows: 0 (the clean file) with probability ``p_clean``,
    else 1..``copies`` uniformly; a function of (seed, epoch, path) only, so resumed runs draw the same."""
    u = stable_seed(seed, epoch, path) / 2 ** 32
    if u < p_clean or copies == 0:
        return 0
    return 1 + min(copies - 1, int((u - p_clean) / (1 - p_clean) * copies))


def build_speech_augment(data: str | Path, copies: int = 3, *, seed: int = 0, rooms: int = 48, babble_files: int = 32,
                         progress: bool = True) -> Path:
    """Write the augmented copies of ``data``'s train-split speech and ``augment.json``; returns its path.
    ``rooms``: simulated room impulse responses to draw from; ``babble_files``: babble noises (4 captions each).

    Raises:
        DatasetError: no dataset, no train speech, or ``copies`` below 1.
    """
    from tqdm import tqdm

    from speechvision.data.degrade import DegradeConfig, build_chain, degrade, make_babble, make_rirs

    if copies < 1:
        raise DatasetError(f"--copies {copies}: give 1 or more")
    ds = load_dataset(data)
    train = sorted({c.audio for r in ds.split("train") for c in r.captions if c.audio})
    if not train:
        raise DatasetError(f"{ds.root}: no train-split speech to augment")
    babble = make_babble([ds.path(a) for a in train], ds.root / "cache" / "augment-babble", babble_files,
                         np.random.default_rng(seed))
    chain = build_chain(DegradeConfig(), babble, make_rirs(ds.root / "cache" / "augment-rirs", rooms, seed=seed))
    index = {}
    for a in tqdm(train, desc="augmenting speech", unit="utt", disable=not progress):
        index[a] = []
        for k in range(1, copies + 1):
            rel = f"audio/augment/{k}/{hashlib.sha1(f'{seed}:{a}'.encode()).hexdigest()[:16]}.wav"
            if not (ds.root / rel).is_file():
                s = stable_seed(seed, a, k)
                wave = perturb(load_audio(ds.path(a)), RATE_HZ, s)
                write_wav_atomic(ds.root / rel, degrade(wave, RATE_HZ, s, chain), RATE_HZ)
            index[a].append(rel)
    out = ds.root / AUGMENT_FILE
    atomic_write_text(out, json.dumps({"copies": copies, "seed": seed, "files": index}))
    return out


def load_augment_index(root: str | Path, copies: int) -> dict[str, list[str]]:
    """{train audio: its augmented copies} from ``root/augment.json``.

    Raises:
        DatasetError: the file is missing or has fewer than ``copies`` copies (says the command to run).
    """
    path = Path(root) / AUGMENT_FILE
    fix = f"run `speechvision data speech-augment --data {root} --copies {copies}`"
    if not path.is_file():
        raise DatasetError(f"{path}: no augmented speech (data.speech_augment.enabled); {fix}")
    meta = json.loads(path.read_text())
    if meta["copies"] < copies:
        raise DatasetError(f"{path}: {meta['copies']} copies per file, fewer than data.speech_augment.copies="
                           f"{copies}; {fix}")
    return {a: c[:copies] for a, c in meta["files"].items()}
