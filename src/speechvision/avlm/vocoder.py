"""Unit vocoder: expressive tokens -> WORLD parameters -> waveform.

A small dilated 1-D conv network predicts, per 10 ms frame, the coded spectral envelope (40 coefficients,
``pyworld.code_spectral_envelope``) and coded aperiodicity from the content unit, the pitch (log2 F0 from
the pitch token's bin centre, absolute and relative to the speaker) and the style token; F0 itself is taken
from the pitch tokens and the WORLD synthesiser (pyworld) makes the waveform. So pitch tokens control the
output F0 exactly (up to WORLD's analysis of its own output), and the network only has to learn timbre.

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

import numpy as np
import torch
from einops import rearrange
from torch import nn


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


class UnitVocoder(nn.Module):
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
            pitch: (B, K, 3) the pitch features of each unit's pitch token (see ``UnitVocoder.forward``).
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
    """(T, 3) vocoder pitch inputs from F0 in Hz (0 = unvoiced); see ``UnitVocoder.forward``."""
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
