"""Microphone hygiene before the log-mel: what a phone or laptop recording needs before the SEN hears it.

Three steps, in this order, each with a well-kept library (issue 17, item 4):

1. **High-pass** at ``highpass_hz`` (80 Hz, 4th-order Butterworth, zero phase; scipy): removes mains hum
   (50/60 Hz) and rumble, below the speech band.
2. **Voice-activity trim** (silero-vad, which ships its model inside the pip package): leading and
   trailing non-speech is cut, keeping ``pad_ms`` around the first and last speech segment. Silence inside
   the utterance is kept. The log-mel is normalised per utterance (CMVN), so seconds of silence or hum
   would otherwise shift every speech frame's features.
3. **Loudness** to ``loudness_lufs`` (-23 LUFS, EBU R128; pyloudnorm's ITU-R BS.1770-4 meter), peaks kept
   below full scale. Clips shorter than the meter's 0.4 s block are scaled by RMS instead.

When the VAD finds no speech the waveform is kept whole: the front-end's own checks (silent, too short)
still apply, and a quiet real utterance is never cut to nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from speechvision.core.audio import resample

VAD_SAMPLE_RATE_HZ = 16000  # silero-vad runs at 8 or 16 kHz


@dataclass(frozen=True)
class Cleanup:
    """Attributes:
        enabled: apply the cleanup at all.
        highpass_hz: high-pass cut-off in Hz (0 = off).
        trim: trim leading and trailing non-speech with silero-vad.
        pad_ms: speech kept before the first and after the last speech segment, in ms.
        vad_threshold: silero-vad's speech probability threshold (its default 0.5).
        loudness_lufs: integrated loudness target in LUFS (None = off).
    """

    enabled: bool = True
    highpass_hz: float = 80.0
    trim: bool = True
    pad_ms: float = 100.0
    vad_threshold: float = 0.5
    loudness_lufs: float | None = -23.0


NO_CLEANUP = Cleanup(enabled=False)


def highpass(wave: np.ndarray, sample_rate_hz: int, cutoff_hz: float) -> np.ndarray:
    """(N,) -> (N,) float32: 4th-order Butterworth high-pass, run forwards and backwards (zero phase)."""
    from scipy.signal import butter, sosfiltfilt

    if len(wave) <= 27:  # sosfiltfilt's padding needs a few samples more than the filter's order
        return wave
    sos = butter(4, cutoff_hz, btype="highpass", fs=sample_rate_hz, output="sos")
    return sosfiltfilt(sos, wave).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _vad_model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def speech_span(wave: np.ndarray, sample_rate_hz: int, *, pad_ms: float = 100.0,
                threshold: float = 0.5) -> tuple[int, int] | None:
    """(start, end) sample indices of ``wave`` from the first to the last speech segment that silero-vad
    finds, widened by ``pad_ms`` each side (clipped to the waveform); None when it finds no speech."""
    import torch
    from silero_vad import get_speech_timestamps

    wave16 = resample(wave, sample_rate_hz, VAD_SAMPLE_RATE_HZ)

    with torch.inference_mode():
        segments = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wave16)), _vad_model(),
                                         threshold=threshold, sampling_rate=VAD_SAMPLE_RATE_HZ, speech_pad_ms=0)
    if not segments:
        return None
    scale = sample_rate_hz / VAD_SAMPLE_RATE_HZ
    pad = round(pad_ms / 1000 * sample_rate_hz)
    start = max(0, int(segments[0]["start"] * scale) - pad)
    end = min(len(wave), int(np.ceil(segments[-1]["end"] * scale)) + pad)
    return start, end


def normalise_loudness(wave: np.ndarray, sample_rate_hz: int, target_lufs: float) -> np.ndarray:
    """(N,) -> (N,) float32 at ``target_lufs`` integrated loudness (RMS for clips under 0.4 s), peak <= 0.99."""
    import warnings

    import pyloudnorm

    x = wave.astype(np.float64)
    if len(x) >= int(0.4 * sample_rate_hz):
        loudness = pyloudnorm.Meter(sample_rate_hz).integrated_loudness(x)
        gain_db = target_lufs - loudness if np.isfinite(loudness) else 0.0
    else:  # too short for the meter's gating block: -23 LUFS is about -23 dBFS RMS for speech
        rms = float(np.sqrt(np.mean(x ** 2)))
        gain_db = target_lufs - 20 * np.log10(rms) if rms > 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = x * 10 ** (gain_db / 20)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def clean(wave: np.ndarray, sample_rate_hz: int, cfg: Cleanup = Cleanup()) -> np.ndarray:
    """(N,) float32 waveform -> (M,) float32, M <= N: high-pass, VAD trim, loudness (see the module)."""
    if not cfg.enabled:
        return wave
    if cfg.highpass_hz > 0:
        wave = highpass(wave, sample_rate_hz, cfg.highpass_hz)
    if cfg.trim:
        span = speech_span(wave, sample_rate_hz, pad_ms=cfg.pad_ms, threshold=cfg.vad_threshold)
        if span is not None:
            wave = wave[span[0]:span[1]]
    if cfg.loudness_lufs is not None:
        wave = normalise_loudness(wave, sample_rate_hz, cfg.loudness_lufs)
    return wave
