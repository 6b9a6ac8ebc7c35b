"""Seeded degradations of speech, with audiomentations and pyroomacoustics (issue 17, item 3).

One chain, drawn per utterance from its own seed, in the order a recording meets them:

1. with probability ``p_room``, a simulated room: one of a bank of room impulse responses
   (:func:`make_rirs`: pyroomacoustics shoebox rooms, full-order image sources for an RT60 drawn in
   ``rt60_s`` seconds; computed once, since one 1 s room takes about 2 s), applied by audiomentations'
   ``ApplyImpulseResponse``;
2. additive noise at an SNR in ``snr_db`` dB: white, pink (``AddColorNoise``) or babble (``AddBackgroundNoise``
   over ``babble`` files, e.g. sums of other captions), one of the three;
3. a gain in ``gain_db`` dB;
4. with probability ``p_telephone``, the 8 kHz telephone band: band-pass 300-3400 Hz, resampled to
   8 kHz and back;
5. with probability ``p_codec``, codec-like quantisation (``BitCrush``, 6-8 bits);
6. with probability ``p_phone``, a phone recording's surroundings: 0.5-2 s of the noise before and after
   the speech and 50 Hz mains hum with two harmonics.

:func:`degrade` runs the chain with numpy's and Python's global random state seeded from ``seed`` and
restored afterwards (audiomentations draws from them), so the same (utterance, seed) always gives the
same copy.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechvision.core.audio import resample


@dataclass(frozen=True)
class DegradeConfig:
    """Ranges and probabilities of :func:`degrade` (the issue's: SNR 0-30 dB, RT60 0.2-1.0 s)."""

    snr_db: tuple[float, float] = (0.0, 30.0)
    rt60_s: tuple[float, float] = (0.2, 1.0)
    gain_db: tuple[float, float] = (-12.0, 12.0)
    p_room: float = 0.5
    p_telephone: float = 0.25
    p_codec: float = 0.25
    p_phone: float = 0.25


def stable_seed(*parts) -> int:
    """A 32-bit seed from ``parts`` (their ``str`` joined by ':', SHA-1): the same in every process and run."""
    return int.from_bytes(hashlib.sha1(":".join(map(str, parts)).encode()).digest()[:4], "little")


@contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """numpy's and Python's global random state seeded from ``seed`` for the block (audiomentations draws
    from them), and restored afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        np.random.seed(seed % 2 ** 32)
        random.seed(seed)
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def make_babble(sources: Sequence[str | Path], folder: Path, n: int, rng: np.random.Generator,
                sample_rate_hz: int = 22050) -> list[Path]:
    """``n`` babble files ``folder/babbleNNN.wav`` (written once, then reused), each the sum of 4 of the audio
    files ``sources`` drawn from ``rng``, scaled to peak <= 1. The draws are made for every file, written or not,
    so a resumed build makes the same babble as an uninterrupted one."""
    from speechvision.core.audio import load_audio
    from speechvision.core.tts import write_wav_atomic

    paths = []
    for k in range(n):
        path = Path(folder) / f"babble{k:03d}.wav"
        picks = [sources[int(i)] for i in rng.choice(len(sources), 4, replace=False)]
        if not path.is_file():
            waves = [load_audio(p, sample_rate_hz=sample_rate_hz) for p in picks]
            mix = np.zeros(max(len(w) for w in waves), np.float32)
            for w in waves:
                mix[: len(w)] += w
            write_wav_atomic(path, mix / max(1.0, float(np.abs(mix).max())), sample_rate_hz)
        paths.append(path)
    return paths


def telephone(wave: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """(N,) -> (N,): band-pass 300-3400 Hz, then down to 8 kHz and back up to ``sample_rate_hz``."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, (300.0, 3400.0), btype="bandpass", fs=sample_rate_hz, output="sos")
    narrow = resample(sosfilt(sos, wave).astype(np.float32), sample_rate_hz, 8000)
    out = resample(narrow, 8000, sample_rate_hz)
    return np.pad(out, (0, max(0, len(wave) - len(out))))[: len(wave)].astype(np.float32)


def phone_surroundings(wave: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """0.5-2 s of quiet noise before and after ``wave``, and 50 Hz hum (with 100 and 150 Hz) throughout,
    at 0.3 of the speech's RMS."""
    before, after = (int(rng.uniform(0.5, 2.0) * sample_rate_hz) for _ in range(2))
    rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) or 1e-3
    x = np.concatenate([np.zeros(before, np.float32), wave, np.zeros(after, np.float32)])
    t = np.arange(len(x)) / sample_rate_hz
    hum = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
              for f, a in ((50, 1.0), (100, 0.5), (150, 0.25)))
    hum *= 0.3 * rms / np.sqrt(np.mean(hum ** 2))
    return (x + hum + rng.standard_normal(len(x)) * rms * 0.01).astype(np.float32)


def make_rirs(folder: str | Path, n: int, cfg: DegradeConfig = DegradeConfig(), *, seed: int = 0,
              sample_rate_hz: int = 22050) -> list[Path]:
    """``n`` room impulse responses as WAVs in ``folder`` (reused when there): room i has sides of 3-8 x 3-6 x
    2.4-3.5 m, an RT60 uniform in ``cfg.rt60_s`` (Sabine's formula gives the wall absorption and the
    image-source order), and a source and a microphone at least 0.5 m from every wall; seeded by (seed, i)."""
    import pyroomacoustics as pra

    from speechvision.core.tts import write_wav_atomic

    paths = []
    for i in range(n):
        path = Path(folder) / f"rir{i:03d}.wav"
        if not path.is_file():
            rng = np.random.default_rng([seed, i])
            dim = [rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.4, 3.5)]
            absorption, order = pra.inverse_sabine(rng.uniform(*cfg.rt60_s), dim)
            room = pra.ShoeBox(dim, fs=sample_rate_hz, materials=pra.Material(absorption), max_order=order)
            room.add_source([rng.uniform(0.5, d - 0.5) for d in dim])
            room.add_microphone([rng.uniform(0.5, d - 0.5) for d in dim])
            room.compute_rir()
            rir = np.asarray(room.rir[0][0], np.float32)
            write_wav_atomic(path, rir / float(np.abs(rir).max()), sample_rate_hz)
        paths.append(path)
    return paths


def build_chain(cfg: DegradeConfig, babble: Sequence[str | Path] = (), rirs: Sequence[str | Path] = ()):
    """The audiomentations chain of steps 1-5 (step 6 is applied by :func:`degrade`); no room without ``rirs``."""
    import audiomentations as A

    lo, hi = cfg.snr_db
    noises = [A.AddColorNoise(min_snr_db=lo, max_snr_db=hi, min_f_decay=0.0, max_f_decay=0.0, p=1.0),  # white
              A.AddColorNoise(min_snr_db=lo, max_snr_db=hi, min_f_decay=-3.01, max_f_decay=-3.01, p=1.0)]  # pink
    if babble:
        noises.append(A.AddBackgroundNoise(sounds_path=[str(b) for b in babble], min_snr_db=lo, max_snr_db=hi, p=1.0))
    room = [A.ApplyImpulseResponse(ir_path=[str(r) for r in rirs], p=cfg.p_room, leave_length_unchanged=True)
            ] if rirs else []
    return A.Compose([
        *room,
        A.OneOf(noises, p=1.0),
        A.Gain(min_gain_db=cfg.gain_db[0], max_gain_db=cfg.gain_db[1], p=1.0),
        A.Lambda(transform=lambda samples, sample_rate: telephone(samples, sample_rate), p=cfg.p_telephone),
        A.BitCrush(min_bit_depth=6, max_bit_depth=8, p=cfg.p_codec),
    ])


def degrade(wave: np.ndarray, sample_rate_hz: int, seed: int, chain,
            cfg: DegradeConfig = DegradeConfig()) -> np.ndarray:
    """(N,) float32 speech -> (M,) float32 degraded copy (M > N with the phone surroundings), peak <= 1.

    ``chain``: from :func:`build_chain`. Deterministic in (``wave``, ``seed``)."""
    with seeded_global_random(seed):
        rng = np.random.default_rng(seed)
        x = chain(samples=wave.astype(np.float32), sample_rate=sample_rate_hz)
        if rng.random() < cfg.p_phone:
            x = phone_surroundings(x, sample_rate_hz, rng)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x / peak if peak > 1.0 else x).astype(np.float32)
