"""Unit vocoder: expressive tokens -> WORLD parameters -> waveform.

A small dilated 1-D conv network predicts, per 10 ms frame, the coded spectral envelope (40 coefficients,
``pyworld.code_spectral_envelope``) and coded aperiodicity from the content unit, the pitch (log2 F0 from
the pitch token's bin centre, absolute and relative to the speaker) and the style token; F0 itself is taken
from the pitch tokens and the WORLD synthesiser (pyworld) makes the waveform. So pitch tokens control the
output F0 exactly (up to WORLD's analysis of its own output), and the network only has to learn timbre.
Level tokens (when the tokenizer has them) set the output level the same way: each 0.5 s window of the
synthesised speech is brought to the speaker's mean level plus its level token's offset (:func:`apply_level`).

Deduplicated units lose their durations, so a duration predictor (``DurationPredictor``: conv layers over
the collapsed unit sequence with its pitch and style, regressing log run length) restores them at decode
time, as the unit-to-speech vocoders of Polyak et al. (Interspeech 2021) and SpiritLM do; without it every
unit gets its corpus-mean run length.

Why this and not a neural waveform vocoder (SpiritLM uses HiFi-GAN): a HiFi-GAN does not train to
intelligibility on 2 CPU cores in minutes; WORLD synthesis needs no training and the envelope network
trains in a few minutes (figures in docs/expressive-speech.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn

from speechvision.avlm.tokens import ExpressiveTokenizer, active_mask, frame_levels_db, power_mean_db
from speechvision.core.checkpoint import load_model_checkpoint
from speechvision.core.errors import SpeechvisionError


@dataclass
class VocoderConfig:
    n_units: int = 200
    n_styles: int = 100
    sample_rate_hz: int = 16000
    frame_ms: float = 10.0
    sp_dims: int = 40
    ap_dims: int = 1
    hidden: int = 256
    kernel: int = 5
    dilations: tuple = (1, 2, 4, 1, 2, 4)
    unit_dim: int = 128
    style_dim: int = 16
    duration_hidden: int = 128  # 0: no duration predictor (mean run lengths at decode time)
    speakers: tuple = ()  # training voices the envelope network is conditioned on; () = voice-independent
    speaker_dim: int = 16
    default_voice: str | None = None  # the voice held-out speakers are rendered in; None = nearest mean F0

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "VocoderConfig":
        d = dict(d)
        d["dilations"] = tuple(d.get("dilations", (1, 2, 4, 1, 2, 4)))
        d["speakers"] = tuple(d.get("speakers", ()))
        return VocoderConfig(**d)


class EnvelopeNetwork(nn.Module):
    """(units, pitch, style[, voice]) per 10 ms frame -> normalised WORLD features per frame.

    With ``config.speakers`` the envelope network also takes a learned embedding of the output voice (the
    issue's optional speaker id; SpiritLM's unit vocoder is conditioned on its Expresso voices the same way),
    so it can render each training voice's timbre instead of an average over voices.
    """

    def __init__(self, config: VocoderConfig):
        super().__init__()
        c = self.config = config
        self.unit_emb = nn.Embedding(c.n_units, c.unit_dim)
        self.style_emb = nn.Embedding(c.n_styles, c.style_dim)
        self.speaker_emb = nn.Embedding(len(c.speakers), c.speaker_dim) if c.speakers else None
        self.inp = nn.Conv1d(c.unit_dim + c.style_dim + 3 + (c.speaker_dim if c.speakers else 0), c.hidden, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(c.hidden, c.hidden, c.kernel, padding=d * (c.kernel // 2), dilation=d),
                          nn.GroupNorm(1, c.hidden), nn.GELU()) for d in c.dilations)
        self.out = nn.Conv1d(c.hidden, c.sp_dims + c.ap_dims, 1)
        self.duration = DurationPredictor(c) if c.duration_hidden else None
        self.register_buffer("target_mean", torch.zeros(c.sp_dims + c.ap_dims))
        self.register_buffer("target_std", torch.ones(c.sp_dims + c.ap_dims))

    def voice_index(self, name: str | None = None, log2_f0: float | None = None,
                    speaker_log2_f0: dict | None = None) -> int | None:
        """Index of the output voice: ``name`` when it is a training voice, else ``config.default_voice``,
        else the training voice whose mean log2 F0 (from ``speaker_log2_f0``) is nearest ``log2_f0``; None for
        a voice-independent vocoder."""
        voices = list(self.config.speakers)
        if not voices:
            return None
        for v in (name, self.config.default_voice):
            if v in voices:
                return voices.index(v)
        if log2_f0 is None or not speaker_log2_f0:
            return 0
        return int(np.argmin([abs(speaker_log2_f0.get(v, np.inf) - log2_f0) for v in voices]))

    def forward(self, units: torch.Tensor, pitch: torch.Tensor, style: torch.Tensor,
                voice: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            units: (B, T) unit index per frame.
            pitch: (B, T, 3): absolute log2 F0 minus 7, log2 F0 relative to the speaker's mean, voiced flag
                (F0 terms are 0 where unvoiced).
            style: (B, T) style index per frame.
            voice: (B,) index into ``config.speakers``; required when the vocoder is voice-conditioned.
        Returns:
            (B, T, sp_dims + ap_dims) normalised coded envelope and aperiodicity.
        Raises:
            ValueError: a voice-conditioned vocoder called without ``voice``.
        """
        parts = [self.unit_emb(units), self.style_emb(style), pitch]
        if self.speaker_emb is not None:
            if voice is None:
                raise ValueError("this vocoder is voice-conditioned: pass voice=(B,) indices")
            parts.append(self.speaker_emb(voice)[:, None].expand(-1, units.shape[1], -1))
        x = torch.cat(parts, -1)
        h = self.inp(rearrange(x, "b t f -> b f t"))
        for block in self.blocks:
            h = h + block(h)
        return rearrange(self.out(h), "b f t -> b t f")


class DurationPredictor(nn.Module):
    """Collapsed units with their pitch and style -> log(1 + run length in unit frames).

    Source: the duration predictor of discrete-unit vocoders (Polyak et al., Interspeech 2021, sec. 2.3:
    two 1-D conv layers with ReLU, layer norm and dropout, MSE on log durations); here three layers of kernel 3.
    """

    def __init__(self, config: VocoderConfig, layers: int = 3, kernel: int = 3, dropout: float = 0.1):
        super().__init__()
        c, h = config, config.duration_hidden
        self.unit_emb = nn.Embedding(c.n_units, c.unit_dim)
        self.style_emb = nn.Embedding(c.n_styles, c.style_dim)
        self.inp = nn.Conv1d(c.unit_dim + c.style_dim + 3, h, 1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv1d(h, h, kernel, padding=kernel // 2), nn.GroupNorm(1, h),
                                                  nn.ReLU(), nn.Dropout(dropout)) for _ in range(layers))
        self.out = nn.Conv1d(h, 1, 1)

    def forward(self, units: torch.Tensor, pitch: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """
        Args:
            units: (B, K) collapsed unit indices.
            pitch: (B, K, 3) the pitch features of each unit's pitch token (see ``EnvelopeNetwork.forward``).
            style: (B, K) style index per unit.
        Returns:
            (B, K) predicted log(1 + run length), run length in unit frames (40 ms at 25 Hz).
        """
        x = torch.cat([self.unit_emb(units), self.style_emb(style), pitch], -1)
        h = self.inp(rearrange(x, "b k f -> b f k"))
        for block in self.blocks:
            h = h + block(h)
        return rearrange(self.out(h), "b 1 k -> b k")


def pitch_features(f0_hz: np.ndarray, speaker_log2_f0: float) -> np.ndarray:
    """(T, 3) vocoder pitch inputs from F0 in Hz (0 = unvoiced); see ``EnvelopeNetwork.forward``."""
    v = f0_hz > 0
    lf = np.zeros_like(f0_hz, dtype=np.float64)
    lf[v] = np.log2(f0_hz[v])
    return np.stack([np.where(v, lf - 7.0, 0.0), np.where(v, lf - speaker_log2_f0, 0.0), v.astype(float)],
                    -1).astype(np.float32)


def world_targets(wave: np.ndarray, sample_rate_hz: int, config: VocoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """(F0 (T,) Hz, coded features (T, sp_dims + ap_dims)) of a waveform by WORLD at ``frame_ms``."""
    import pyworld

    x = wave.astype(np.float64)
    f0, t = pyworld.dio(x, sample_rate_hz, f0_floor=60.0, f0_ceil=600.0, frame_period=config.frame_ms)
    f0 = pyworld.stonemask(x, f0, t, sample_rate_hz)
    sp = pyworld.cheaptrick(x, f0, t, sample_rate_hz)
    ap = pyworld.d4c(x, f0, t, sample_rate_hz)
    csp = pyworld.code_spectral_envelope(sp, sample_rate_hz, config.sp_dims)
    cap = pyworld.code_aperiodicity(ap, sample_rate_hz)
    return f0, np.concatenate([csp, cap], 1).astype(np.float32)


def world_synthesize(f0_hz: np.ndarray, coded: np.ndarray, config: VocoderConfig) -> np.ndarray:
    """(N,) float32 waveform from F0 (T,) and coded features (T, sp_dims + ap_dims) by WORLD."""
    import pyworld

    fs = config.sample_rate_hz
    fft = pyworld.get_cheaptrick_fft_size(fs)
    coded = np.ascontiguousarray(coded, np.float64)
    sp = pyworld.decode_spectral_envelope(np.ascontiguousarray(coded[:, :config.sp_dims]), fs, fft)
    ap = pyworld.decode_aperiodicity(np.ascontiguousarray(coded[:, config.sp_dims:]), fs, fft)
    y = pyworld.synthesize(np.ascontiguousarray(f0_hz, np.float64), sp, ap, fs, frame_period=config.frame_ms)
    peak = np.abs(y).max()
    return (y * (0.95 / peak) if peak > 0.95 else y).astype(np.float32)


VOCODER_VERSION = 2  # 2: with the duration predictor


class VocoderError(SpeechvisionError, ValueError):
    """A vocoder checkpoint is missing or from another version."""


def frame_inputs(tok: ExpressiveTokenizer, unit_frames, pitch_tokens_per_frame, style_frames, speaker_log2_f0, n):
    """Vocoder inputs at 10 ms frames from unit (40 ms), pitch-token (80 ms) and style (1 s) frame streams."""
    cfg = tok.config
    up_u, up_p, up_s = int(round(100 / cfg.unit_hz)), int(round(100 / cfg.pitch_hz)), int(round(100 / cfg.style_hz))

    def fit(a, k):
        a = np.repeat(np.asarray(a), k)
        return np.concatenate([a, np.full(max(0, n - len(a)), a[-1])])[:n]

    units, pitch, style = fit(unit_frames, up_u), fit(pitch_tokens_per_frame, up_p), fit(style_frames, up_s)
    f0 = tok.pitch_to_f0(pitch, speaker_log2_f0)
    return units, f0, style


def unit_inputs(tok: ExpressiveTokenizer, streams: dict, speaker_log2_f0: float) -> tuple[np.ndarray, ...]:
    """Per collapsed unit: (units (K,), pitch features (K, 3), style (K,)) for the duration predictor."""
    f0 = tok.pitch_to_f0(streams["pitch"], speaker_log2_f0)
    return streams["units"], pitch_features(f0, speaker_log2_f0), streams["style"]


def vocoder_checkpoint(folder: str | Path) -> dict:
    return load_model_checkpoint(Path(folder) / "vocoder.pt", "vocoder", VOCODER_VERSION, VocoderError,
                                 "speechvision speechlm vocoder", "vocoder")


def vocoder_from_checkpoint(ckpt: dict) -> EnvelopeNetwork:
    model = EnvelopeNetwork(VocoderConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_vocoder(folder: str | Path) -> EnvelopeNetwork:
    return vocoder_from_checkpoint(vocoder_checkpoint(folder))


class UnitVocoder:
    """Expressive tokens -> speech: the tokenizer gives the clock and F0, the envelope network the timbre,
    WORLD synthesis the waveform (:meth:`decode`)."""

    def __init__(self, tokenizer: ExpressiveTokenizer, vocoder: EnvelopeNetwork):
        self.tok, self.vocoder = tokenizer, vocoder

    @staticmethod
    def load(tokenizer_dir: str | Path, vocoder_dir: str | Path) -> "UnitVocoder":
        return UnitVocoder(ExpressiveTokenizer.load(tokenizer_dir), load_vocoder(vocoder_dir))

    @torch.no_grad()
    def decode(self, tokens: list[int], speaker: str | None = None, speaker_log2_f0: float | None = None,
               rate: float = 1.0, voice: str | None = None, speaker_level_db: float | None = None) -> np.ndarray:
        """(N,) float32 waveform at the tokenizer's rate for an interleaved token sequence.

        F0 is the bin centre of each pitch token relative to the speaker's mean (``speaker`` fitted or
        enrolled, or ``speaker_log2_f0`` given; otherwise the mean over known speakers). Each unit lasts
        its predicted duration (the vocoder's duration predictor), or its corpus-mean run length when the
        vocoder has none; ``rate`` > 1 speaks faster. A voice-conditioned vocoder renders the timbre of
        ``voice``, else of ``speaker`` when it is a training voice, else (held-out speakers) of its
        ``default_voice``, else of the training voice whose mean F0 is nearest the speaker's. Level tokens
        set each window's active level to the speaker's mean level (``speaker_level_db`` in dBFS, else the
        enrolled ``speaker``'s, else the mean over known speakers) plus the token's offset.

        Raises:
            TokenizerError: the sequence holds no content unit.
        """
        streams = self.tok.split_streams(tokens)
        mean = speaker_log2_f0 if speaker_log2_f0 is not None else self.tok.speaker_mean(speaker)
        per = int(round(100 / self.tok.config.unit_hz))
        v = self.vocoder
        if v.duration is not None:
            u, p, s = (torch.from_numpy(a)[None] for a in unit_inputs(self.tok, streams, mean))
            runs = torch.expm1(v.duration(u.long(), p.float(), s.long())[0]).clamp(min=0).numpy()
        else:
            runs = streams["unit_frames"].astype(float)
        reps = np.maximum(1, np.round(runs * per / rate)).astype(np.int64)
        units = np.repeat(streams["units"], reps)
        style = np.repeat(streams["style"], reps)
        f0 = self.tok.pitch_to_f0(np.repeat(streams["pitch"], reps), mean)
        f0 = _smooth_f0(f0)
        pf = pitch_features(f0, mean)
        vi = v.voice_index(voice or speaker, mean, self.tok.speaker_log2_f0)
        pred = v(torch.from_numpy(units)[None], torch.from_numpy(pf)[None], torch.from_numpy(style)[None],
                 None if vi is None else torch.tensor([vi]))[0]
        coded = (pred * v.target_std + v.target_mean).numpy()
        wave = world_synthesize(f0, coded, v.config)
        level = self.tok.level_to_db(np.repeat(streams["level"], reps))
        if np.isfinite(level).any():
            ref = speaker_level_db if speaker_level_db is not None else self.tok.speaker_level(speaker)
            wave = apply_level(wave, ref + level, self.tok.config.sample_rate_hz, v.config.frame_ms,
                               int(round(100 / self.tok.config.level_hz)))
        return wave


def apply_level(wave: np.ndarray, target_db: np.ndarray, sample_rate_hz: int, frame_ms: float = 10.0,
                frames_per_window: int = 50, peak: float = 0.99) -> np.ndarray:
    """Bring each window's active level to its target: the level tokens' rendering.

    Args:
        wave: (N,) synthesised speech.
        target_db: (T,) target active level in dBFS per ``frame_ms`` frame (NaN: keep the level).
        frames_per_window: frames per level window (the tokenizer's ``level_hz`` window).
        peak: if the result's peak is above this, the whole utterance is scaled down to it (PCM range).
    Returns:
        (N,) float32: the waveform times a gain that is constant per window at its centre (the target
        minus the measured active level, over the window's active frames) and interpolated linearly in dB
        between window centres, so there are no steps.
    """
    hop = int(round(sample_rate_hz * frame_ms / 1000))
    lv = frame_levels_db(wave, sample_rate_hz, frame_ms)
    active = active_mask(lv)
    n = min(len(lv), len(target_db))
    centres, gains = [], []
    for start in range(0, n, frames_per_window):
        sl = slice(start, min(start + frames_per_window, n))
        use = active[sl] & np.isfinite(target_db[sl])
        if use.any():
            gains.append(power_mean_db(target_db[sl][use]) - power_mean_db(lv[sl][use]))
            centres.append((sl.start + sl.stop) / 2 * hop)
    if not gains:
        return wave.astype(np.float32)
    gain_db = np.interp(np.arange(len(wave)), centres, gains)
    y = wave * 10 ** (gain_db / 20)
    top = np.abs(y).max()
    return (y * (peak / top) if top > peak else y).astype(np.float32)


def _smooth_f0(f0: np.ndarray, width: int = 5) -> np.ndarray:
    """Moving average of log F0 within voiced runs (removes the quantisation steps; keeps voicing)."""
    out = f0.copy()
    v = f0 > 0
    if not v.any():
        return out
    lf = np.where(v, np.log(np.where(v, f0, 1.0)), 0.0)
    k = np.ones(width)
    num = np.convolve(lf, k, "same")
    den = np.convolve(v.astype(float), k, "same")
    out[v] = np.exp(num[v] / np.maximum(den[v], 1))
    return out
