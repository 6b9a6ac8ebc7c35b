"""Audio front-end: load, validate, resample and turn speech into S2IGAN log-mel features.

Every public function raises :class:`AudioError` (a ``ValueError``) with a one-line message that
names the file and the problem, so the CLI can print it as is.

Source: S2IGAN official code (xinshengwang/S2IGAN), ``audio_processing``: librosa at 22050 Hz
(Tacotron2 output rate), 40 mel bands, 25 ms window and FFT (551 samples), 10 ms hop (220 samples),
``log(x + 1e-6)``, then per-utterance, per-band mean and variance normalisation.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechvision.core.errors import SpeechvisionError

MODEL_SAMPLE_RATE_HZ = 22050


class AudioError(SpeechvisionError, ValueError):
    """Bad audio input; the message is a single line naming the file."""


@dataclass(frozen=True)
class LogMelConfig:
    """Speech front-end parameters: log-mel (S2IGAN official setting) or a frozen Whisper encoder.

    Attributes:
        sample_rate_hz: model rate; inputs are resampled to it (log-mel).
        n_mels: number of mel bands (F).
        window_ms: analysis window and FFT length in milliseconds (25 ms -> 551 samples).
        hop_ms: hop in milliseconds (10 ms -> 220 samples).
        log_offset: added before the log.
        normalize: per-utterance, per-band mean/variance normalisation (CMVN).
        frontend: "logmel" (the paper's) or "whisper": the last encoder layer of the offline Whisper tiny
            model (F = 384 at 25 Hz, input at 16 kHz, the window fitted to the utterance instead of padded
            to 30 s; issue 17 item 6). The SEN's ``speech.n_mels`` must equal :attr:`feature_dim`.
    """

    sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ
    n_mels: int = 40
    window_ms: float = 25.0
    hop_ms: float = 10.0
    log_offset: float = 1e-6
    normalize: bool = True
    frontend: str = "logmel"

    @property
    def input_rate_hz(self) -> int:
        """The rate audio is loaded at: 16 kHz for the Whisper front end, else ``sample_rate_hz``."""
        return WHISPER_RATE_HZ if self.frontend == "whisper" else self.sample_rate_hz

    @property
    def feature_dim(self) -> int:
        """F of the (T, F) features: ``n_mels``, or the Whisper encoder's width."""
        return WHISPER_DIM if self.frontend == "whisper" else self.n_mels

    @property
    def frames_per_s(self) -> float:
        """Feature frames per second: 1000 / ``hop_ms`` for log-mels, 25 for the Whisper encoder."""
        return WHISPER_FPS if self.frontend == "whisper" else 1000.0 / self.hop_ms

    @property
    def n_fft(self) -> int:
        return int(self.sample_rate_hz * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        return int(self.sample_rate_hz * self.hop_ms / 1000)


@dataclass(frozen=True)
class AudioChecks:
    """Limits applied to every input utterance.

    Attributes:
        max_duration_s: longer inputs are rejected (default 30 s).
        min_duration_s: shorter inputs are rejected as empty.
        silence_rms: an utterance whose RMS (full scale = 1.0) is below this is rejected as silent.
    """

    max_duration_s: float = 30.0
    min_duration_s: float = 0.05
    silence_rms: float = 1e-4


def _name(source: str | Path | None) -> str:
    return str(source) if source is not None else "<waveform>"


def check_waveform(wave: np.ndarray, sample_rate_hz: int, *, source: str | Path | None = None,
                   checks: AudioChecks = AudioChecks()) -> np.ndarray:
    """Validate a mono waveform and return it as float32.

    Args:
        wave: (N,) samples, full scale 1.0.
        sample_rate_hz: its rate.
        source: file name used in error messages.

    Raises:
        AudioError: NaN/Inf samples, empty or too short, longer than ``checks.max_duration_s``,
            or all-silent or constant (RMS about the mean below ``checks.silence_rms``).
    """
    name = _name(source)
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise AudioError(f"{name}: expected a mono waveform of shape (N,), got shape {wave.shape}")
    if wave.size == 0:
        raise AudioError(f"{name}: the audio is empty (0 samples)")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{name}: the audio contains NaN or Inf samples")
    duration_s = wave.size / sample_rate_hz
    if duration_s < checks.min_duration_s:
        raise AudioError(f"{name}: the audio is too short ({duration_s * 1000:.0f} ms < "
                         f"{checks.min_duration_s * 1000:.0f} ms)")
    if duration_s > checks.max_duration_s:
        raise AudioError(f"{name}: the audio is too long ({duration_s:.1f} s > {checks.max_duration_s:.1f} s cap; "
                         f"raise it with --max-duration-s)")
    # RMS about the mean: a constant (DC-only) signal carries no sound however large its offset.
    rms = float(np.std(wave, dtype=np.float64))
    if rms < checks.silence_rms:
        what = "a constant (DC-only) signal" if abs(float(wave.mean())) >= checks.silence_rms else "silent"
        raise AudioError(f"{name}: the audio is {what} (RMS about the mean {rms:.2e} below "
                         f"{checks.silence_rms:.0e}); record or choose a file with speech in it")
    return wave.astype(np.float32, copy=False)


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send the process's file descriptor 2 to /dev/null for the block: C libraries' diagnostics (not
    Python's) stay off the terminal, so a bad file gives one line, not decoder chatter."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_wav_complete(path: Path) -> None:
    """For a RIFF/WAVE file, check that its ``data`` chunk holds as many bytes as its header declares
    (libsndfile silently reads a cut file up to where it ends).

    Raises:
        AudioError: the data chunk is cut short (names the file and both sizes).
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                have = size - f.tell()
                if declared != 0xFFFFFFFF and have < declared:
                    raise AudioError(f"{path}: the WAV file is truncated ({have} of {declared} data bytes); "
                                     "re-export or re-record it")
                return
            f.seek(declared + (declared & 1), 1)


def load_audio(path: str | Path, *, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
               checks: AudioChecks = AudioChecks()) -> np.ndarray:
    """Read any file soundfile or librosa can decode (WAV/FLAC/OGG/MP3), downmix to mono, resample.

    Returns:
        (N,) float32 waveform at ``sample_rate_hz``.

    Raises:
        AudioError: missing file, undecodable or truncated file (WAV: checked against its header), or any
            failure of :func:`check_waveform`.
    """
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file; give the audio files in it (e.g. {path}/*.wav)")
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); record or export it again")
    check_wav_complete(path)
    try:
        with quiet_stderr():  # the C decoders (libmpg123) print resync notes on bad input
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        wave = data.mean(axis=1)
    except Exception:  # soundfile cannot read it (e.g. MP3 on old libsndfile): try librosa
        try:
            import warnings

            import librosa

            with warnings.catch_warnings(), quiet_stderr():
                warnings.simplefilter("ignore")
                wave, rate = librosa.load(str(path), sr=None, mono=True)
        except Exception:
            raise AudioError(f"{path}: not a readable audio file (not WAV, FLAC, OGG or MP3, or corrupt); "
                             "convert it to WAV or FLAC") from None
    # Downmix happened above; checks run on the file's own rate so durations are exact.
    wave = check_waveform(wave, int(rate), source=path, checks=checks)
    if int(rate) != sample_rate_hz:
        wave = resample(wave, int(rate), sample_rate_hz)
    return wave


def resample(wave: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample a (N,) waveform with librosa's default (soxr high quality)."""
    import librosa

    if from_hz == to_hz:
        return wave.astype(np.float32, copy=False)
    return librosa.resample(wave.astype(np.float32), orig_sr=from_hz, target_sr=to_hz).astype(np.float32)


def log_mel(wave: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """S2IGAN log-mel features of a waveform at ``config.sample_rate_hz``.

    Args:
        wave: (N,) float waveform.

    Returns:
        (T, F) float32 with F = ``config.n_mels`` (40) and T = 1 + N // hop_length (centred frames).
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wave.astype(np.float32), sr=config.sample_rate_hz, n_fft=config.n_fft,
        hop_length=config.hop_length, win_length=config.n_fft, n_mels=config.n_mels)
    feats = np.log(mel + config.log_offset).T  # (T, F)
    if config.normalize:
        feats = (feats - feats.mean(axis=0, keepdims=True)) / (feats.std(axis=0, keepdims=True) + 1e-5)
    return np.ascontiguousarray(feats, dtype=np.float32)


FRONTENDS = ("logmel", "whisper")
WHISPER_RATE_HZ, WHISPER_DIM = 16000, 384
WHISPER_FPS = 25.0  # frames per second of the Whisper front end's features


def speech_features(wave: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """(T, F) features of a waveform at ``config.input_rate_hz``: :func:`log_mel`, or for
    ``frontend="whisper"`` the frozen Whisper encoder's last layer at 25 Hz (F = 384), its window fitted to
    the utterance (``core.asr.whisper_encoder_features(pad_to_30s=False)``).

    Raises:
        ValueError: an unknown front end.
    """
    if config.frontend == "logmel":
        return log_mel(wave, config)
    if config.frontend == "whisper":
        from speechvision.core.asr import whisper_encoder_features

        return whisper_encoder_features(wave, WHISPER_RATE_HZ, pad_to_30s=False)
    raise ValueError(f"audio.frontend={config.frontend}: choose one of {', '.join(FRONTENDS)}")


def file_log_mel(path: str | Path, config: LogMelConfig = LogMelConfig(),
                 checks: AudioChecks = AudioChecks()) -> np.ndarray:
    """Load ``path`` and return its (T, F) front-end features (:func:`speech_features`); errors as
    :func:`load_audio`."""
    return speech_features(load_audio(path, sample_rate_hz=config.input_rate_hz, checks=checks), config)
