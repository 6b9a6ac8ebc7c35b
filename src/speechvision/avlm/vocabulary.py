"""The expressive token vocabulary in the SpiritLM-Expressive layout: special tokens, then content units,
pitch bins, style tokens and (optionally) level tokens (:class:`Vocabulary`), run-length collapsing, pitch
and level quantisation, and the time-ordered interleaving of the streams (:func:`interleave`). No audio
here: the tokenizer that produces the streams is :mod:`speechvision.avlm.tokens`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from speechvision.core.errors import SpeechvisionError

SPECIALS = ("<pad>", "<bos>", "<eos>", "[Speech]", "<start_of_audio>", "<start_of_visual>", "<start_of_av>",
            "<speech_mask>", "<start_of_text>", "<emotion:neutral>", "<emotion:happy>", "<emotion:angry>",
            "<emotion:sad>", "<response>", "<reserved14>", "<reserved15>")


N_SPECIAL = 16


N_PITCH_BINS = 64


N_LEVEL_BINS = 16


class TokenizerError(SpeechvisionError, ValueError):
    """Bad audio, a malformed token sequence, or a tokenizer folder from another version."""


@dataclass(frozen=True)
class Vocabulary:
    """Token id layout for ``n_units`` units, ``n_styles`` styles and ``n_level`` level bins (0: no level
    stream, the layout of tokenizers made before it existed; level tokens come last, so the other ids do not
    move)."""

    n_units: int
    n_styles: int
    n_pitch: int = N_PITCH_BINS + 1
    n_level: int = 0

    @property
    def unit0(self) -> int:
        return N_SPECIAL

    @property
    def pitch0(self) -> int:
        return N_SPECIAL + self.n_units

    @property
    def style0(self) -> int:
        return self.pitch0 + self.n_pitch

    @property
    def level0(self) -> int:
        return self.style0 + self.n_styles

    @property
    def size(self) -> int:
        return self.level0 + self.n_level

    def special(self, name: str) -> int:
        return SPECIALS.index(name)

    def unit(self, k: int) -> int:
        return self.unit0 + int(k)

    def pitch(self, b: int | None) -> int:
        """Pitch token of bin ``b`` (0..63), or the unvoiced token for ``None``."""
        return self.pitch0 if b is None else self.pitch0 + 1 + int(b)

    def style(self, s: int) -> int:
        return self.style0 + int(s)

    def level(self, b: int) -> int:
        """Level token of bin ``b`` (0 .. n_level - 1)."""
        if not 0 <= int(b) < self.n_level:
            raise TokenizerError(f"level bin {b} is outside 0..{self.n_level - 1}")
        return self.level0 + int(b)

    def kind(self, tok: int) -> str:
        """"special", "unit", "pitch", "style" or "level"."""
        if tok < N_SPECIAL:
            return "special"
        if tok < self.pitch0:
            return "unit"
        if tok < self.style0:
            return "pitch"
        if tok < self.level0:
            return "style"
        if tok < self.size:
            return "level"
        raise TokenizerError(f"token id {tok} is outside the vocabulary of {self.size}")

    def kinds(self) -> np.ndarray:
        """(V,) int8 array: 0 special, 1 unit, 2 pitch, 3 style, 4 level."""
        k = np.zeros(self.size, np.int8)
        k[self.unit0:self.pitch0], k[self.pitch0:self.style0], k[self.style0:self.level0] = 1, 2, 3
        k[self.level0:] = 4
        return k

    def to_str(self, tok: int) -> str:
        kind = self.kind(tok)
        if kind == "special":
            return SPECIALS[tok]
        if kind == "unit":
            return f"[Hu{tok - self.unit0}]"
        if kind == "pitch":
            return "[Pi-unvoiced]" if tok == self.pitch0 else f"[Pi{tok - self.pitch0 - 1}]"
        if kind == "level":
            return f"[Lv{tok - self.level0}]"
        return f"[St{tok - self.style0}]"


def collapse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive duplicates collapsed.

    Args:
        values: (T,) integer sequence.
    Returns:
        (kept values (K,), start frame of each kept value (K,), run lengths are the differences).
    """
    values = np.asarray(values)
    if values.size == 0:
        return values, np.zeros(0, np.int64)
    keep = np.ones(values.size, bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep], np.flatnonzero(keep)


def quantize_pitch(log2_ratio: np.ndarray, n_bins: int = N_PITCH_BINS, range_octaves: float = 1.0) -> np.ndarray:
    """Bin index (0..n_bins-1) of log2(F0 / speaker mean F0); monotonic non-decreasing; clipped at the ends."""
    width = 2 * range_octaves / n_bins
    return np.clip(np.floor((np.asarray(log2_ratio) + range_octaves) / width), 0, n_bins - 1).astype(np.int64)


def pitch_bin_centre(bins: np.ndarray, n_bins: int = N_PITCH_BINS, range_octaves: float = 1.0) -> np.ndarray:
    """log2(F0 / speaker mean) at the centre of each bin; one bin is 2 * range / n_bins octaves."""
    width = 2 * range_octaves / n_bins
    return -range_octaves + (np.asarray(bins, np.float64) + 0.5) * width


def quantize_level(rel_db: np.ndarray, n_bins: int = N_LEVEL_BINS, range_db: float = 12.0) -> np.ndarray:
    """Bin index (0..n_bins-1) of a level in dB relative to the speaker's mean level; uniform bins over
    +-``range_db`` (one bin is 2 * range_db / n_bins dB), monotonic, clipped at the ends."""
    width = 2 * range_db / n_bins
    return np.clip(np.floor((np.asarray(rel_db, np.float64) + range_db) / width), 0, n_bins - 1).astype(np.int64)


def level_bin_centre(bins: np.ndarray, n_bins: int = N_LEVEL_BINS, range_db: float = 12.0) -> np.ndarray:
    """Level in dB relative to the speaker's mean at the centre of each bin."""
    width = 2 * range_db / n_bins
    return -range_db + (np.asarray(bins, np.float64) + 0.5) * width


STREAM_ORDER = ("style", "level", "pitch", "unit")


def interleave(streams: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, str, int]]:
    """Merge deduplicated streams by time, in the canonical layout.

    Args:
        streams: name -> (token ids (K,), start times in seconds (K,)); names "style", "level" (optional),
            "pitch", "unit".
    Returns:
        [(time_s, name, token id)] sorted by time (style < level < pitch < unit at equal times), where every
        pitch, level or style token is followed by a unit: before each unit comes at most one style token,
        then at most one level token, then at most one pitch token (the latest of each since the previous
        unit; the ones they replace could never take effect, as each unit is spoken with the latest pitch,
        level and style), and tokens after the last unit are dropped. So no two tokens of one prosody
        stream are ever adjacent, which is the constraint the LM's sampler enforces.
    """
    order = {name: i for i, name in enumerate(STREAM_ORDER)}
    items = sorted(((float(t), order[name], name, int(tok)) for name, (toks, times) in streams.items()
                    for tok, t in zip(toks, times)), key=lambda x: (x[0], x[1]))
    out, pending = [], {}
    for t, _, name, tok in items:
        if name != "unit":
            pending[name] = (t, name, tok)
            continue
        out.extend(pending[k] for k in STREAM_ORDER[:-1] if k in pending)
        pending = {}
        out.append((t, name, tok))
    return out


@dataclass
class Encoded:
    """One utterance in tokens: the interleaved sequence and, for the vocoder's training, frame-level streams."""

    tokens: list[int]
    speaker: str | None
    unit_frames: np.ndarray  # (T_u,) unit index per 40 ms frame (before collapsing)
    pitch_frames: np.ndarray  # (T_p,) pitch token id per 80 ms frame
    style_frames: np.ndarray  # (T_s,) style index per 1 s window
    duration_s: float
    level_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T_l,) level bin per window
