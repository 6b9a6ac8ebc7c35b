"""The expressive speech pipeline: tokenize a corpus, train the unit vocoder, decode tokens to speech.

Folders (all JSON + safetensors, never pickles):

- tokenizer folder (``tokenize_corpus``): ``tokenizer.json`` + ``tokenizer.safetensors`` and
  ``encoded.jsonl`` (one utterance per line: id, split, emotion, speaker, tokens and the frame-level
  streams the vocoder trains on).
- vocoder folder (``train_vocoder``): ``vocoder.pt`` (state dict + config + version), ``log.jsonl``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from speechvision.data.manifest import _atomic_write_text
from speechvision.avlm.data.spoken_emotion import load_corpus
from speechvision.core.errors import SpeechvisionError
from speechvision.avlm.vocoder import UnitVocoder, VocoderConfig, pitch_features, world_synthesize, world_targets
from speechvision.avlm.tokens import ExpressiveTokenizer, TokenizerConfig, TokenizerError, collapse, fit_tokenizer
from speechvision.core.checkpoint import checkpoint_state, load_model_checkpoint, save_checkpoint

VOCODER_VERSION = 2  # 2: with the duration predictor


def read_wave(path: str | Path, sample_rate_hz: int = 16000) -> np.ndarray:
    """(N,) float32 mono waveform at ``sample_rate_hz`` through the project's audio front-end checks."""
    from speechvision.core.audio import load_audio

    return load_audio(path, sample_rate_hz=sample_rate_hz)


def tokenize_corpus(corpus: str | Path, out: str | Path, config: TokenizerConfig = TokenizerConfig(), *,
                    progress: bool = True) -> Path:
    """Fit the tokenizer on the corpus's train split and encode every utterance into ``encoded.jsonl``.

    Speakers outside the train split (the held-out test voices) get their mean F0 from their own
    utterances before encoding (speaker enrolment on unlabelled audio, as speaker normalisation needs).
    """
    from tqdm import tqdm

    corpus, out = Path(corpus), Path(out)
    _, rows = load_corpus(corpus)
    train = [r for r in rows if r["split"] == "train"]
    waves = {r["id"]: read_wave(corpus / r["audio"], config.sample_rate_hz)
             for r in tqdm(rows, desc="reading audio", unit="utt", disable=not progress)}
    from speechvision.avlm.tokens import unit_features

    feats = {r["id"]: unit_features(waves[r["id"]], config)
             for r in tqdm(rows, desc=f"{config.unit_features} features", unit="utt", disable=not progress)}
    tok = fit_tokenizer([waves[r["id"]] for r in train], [r["voice"] for r in train], config, progress=progress,
                        unit_feats=[feats[r["id"]] for r in train])
    unknown = {r["voice"] for r in rows} - set(tok.speaker_log2_f0)
    add_speakers(tok, {v: [waves[r["id"]] for r in rows if r["voice"] == v] for v in sorted(unknown)})
    tok.save(out)
    lines = []
    for r in tqdm(rows, desc="encoding", unit="utt", disable=not progress):
        e = tok.encode(waves[r["id"]], r["voice"], unit_feats=feats[r["id"]])
        lines.append(json.dumps({"id": r["id"], "split": r["split"], "emotion": r["emotion"], "speaker": r["voice"],
                                 "dialogue": r["dialogue"], "role": r["role"], "text": r["text"],
                                 "audio": str((corpus / r["audio"]).resolve()), "tokens": e.tokens,
                                 "unit_frames": e.unit_frames.tolist(), "pitch_frames": e.pitch_frames.tolist(),
                                 "style_frames": e.style_frames.tolist()}) + "\n")
    _atomic_write_text(out / "encoded.jsonl", "".join(lines))
    return out


def add_speakers(tok: ExpressiveTokenizer, waves_by_speaker: dict) -> None:
    """Enrol speakers: their mean log2 F0 over the voiced frames of the given waveforms."""
    from speechvision.avlm.tokens import f0_track

    for spk, waves in (waves_by_speaker or {}).items():
        lf = [np.log2(f[f > 0]) for f in (f0_track(w, tok.config.sample_rate_hz) for w in waves)]
        lf = np.concatenate(lf) if lf else np.zeros(0)
        if len(lf):
            tok.speaker_log2_f0[spk] = float(lf.mean())


def load_encoded(folder: str | Path, split: str | None = None) -> list[dict]:
    path = Path(folder) / "encoded.jsonl"
    if not path.is_file():
        raise TokenizerError(f"{path}: missing; run `speechvision speechlm tokenize` first")
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in rows if split is None or r["split"] == split]


# --- vocoder -------------------------------------------------------------------------------------------------

class VocoderError(SpeechvisionError, ValueError):
    """A vocoder checkpoint is missing or from another version."""


def _frame_inputs(tok: ExpressiveTokenizer, unit_frames, pitch_tokens_per_frame, style_frames, speaker_log2_f0, n):
    """Vocoder inputs at 10 ms frames from unit (40 ms), pitch-token (80 ms) and style (1 s) frame streams."""
    cfg = tok.config
    up_u, up_p, up_s = int(round(100 / cfg.unit_hz)), int(round(100 / cfg.pitch_hz)), int(round(100 / cfg.style_hz))

    def fit(a, k):
        a = np.repeat(np.asarray(a), k)
        return np.concatenate([a, np.full(max(0, n - len(a)), a[-1])])[:n]

    units, pitch, style = fit(unit_frames, up_u), fit(pitch_tokens_per_frame, up_p), fit(style_frames, up_s)
    f0 = tok.pitch_to_f0(pitch, speaker_log2_f0)
    return units, f0, style


def _unit_inputs(tok: ExpressiveTokenizer, streams: dict, speaker_log2_f0: float) -> tuple[np.ndarray, ...]:
    """Per collapsed unit: (units (K,), pitch features (K, 3), style (K,)) for the duration predictor."""
    f0 = tok.pitch_to_f0(streams["pitch"], speaker_log2_f0)
    return streams["units"], pitch_features(f0, speaker_log2_f0), streams["style"]


def duration_examples(tok: ExpressiveTokenizer, row: dict) -> tuple[np.ndarray, ...] | None:
    """(units, pitch features, style, run lengths in unit frames) of one encoded utterance, or None when the
    token sequence and the frame stream disagree (cannot happen for ``encode``'s output)."""
    streams = tok.split_streams(row["tokens"])
    kept, starts = collapse(np.asarray(row["unit_frames"]))
    if len(kept) != len(streams["units"]) or not np.array_equal(kept, streams["units"]):
        return None
    runs = np.diff(np.append(starts, len(row["unit_frames"])))
    return (*_unit_inputs(tok, streams, tok.speaker_log2_f0[row["speaker"]]), runs.astype(np.float32))


def _duration_batch(items: list[tuple], rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, ...]:
    """A padded batch of whole utterances: units (B, K), pitch (B, K, 3), style (B, K), runs (B, K), mask (B, K)."""
    batch = [items[i] for i in rng.integers(0, len(items), batch_size)]
    k = max(len(b[0]) for b in batch)
    pad = lambda a: np.pad(a, [(0, k - len(a))] + [(0, 0)] * (a.ndim - 1))  # noqa: E731
    u, p, s, d = (torch.from_numpy(np.stack([pad(b[i]) for b in batch])) for i in range(4))
    mask = torch.from_numpy(np.stack([np.arange(k) < len(b[0]) for b in batch]))
    return u.long(), p.float(), s.long(), d.float(), mask


def vocoder_config(tokenizer_dir: str | Path, *, voice_conditioned: bool = False, **overrides) -> VocoderConfig:
    """The vocoder config matching a tokenizer folder (unit and style counts, sample rate), with overrides;
    ``voice_conditioned`` conditions the envelope network on the train split's voices."""
    c = ExpressiveTokenizer.load(tokenizer_dir).config
    if voice_conditioned:
        overrides["speakers"] = tuple(sorted({r["speaker"] for r in load_encoded(tokenizer_dir, "train")}))
    return VocoderConfig(n_units=c.n_units, n_styles=c.n_styles, sample_rate_hz=c.sample_rate_hz, **overrides)


def train_vocoder(tokenizer_dir: str | Path, out: str | Path, *, steps: int = 3000, batch_size: int = 16,
                  crop_frames: int = 200, lr: float = 2e-3, seed: int = 0, progress: bool = True,
                  config: VocoderConfig | None = None) -> Path:
    """Train the envelope network on the train split's WORLD features (L1 on normalised targets) and, with
    ``config.duration_hidden``, the duration predictor on the units' run lengths (MSE on log(1 + frames)).

    Inputs are what decoding will have: quantised pitch (bin centres) and the frame-level unit and style
    indices. Writes ``vocoder.pt`` atomically and an append-only ``log.jsonl``.
    """
    from tqdm import tqdm

    tok = ExpressiveTokenizer.load(tokenizer_dir)
    rows = load_encoded(tokenizer_dir, "train")
    config = config or vocoder_config(tokenizer_dir)
    data = []
    for r in tqdm(rows, desc="WORLD analysis", unit="utt", disable=not progress):
        f0, target = world_targets(read_wave(r["audio"], config.sample_rate_hz), config.sample_rate_hz, config)
        n = len(target)
        units, qf0, style = _frame_inputs(tok, r["unit_frames"], r["pitch_frames"], r["style_frames"],
                                          tok.speaker_log2_f0[r["speaker"]], n)
        voice = config.speakers.index(r["speaker"]) if r["speaker"] in config.speakers else 0
        data.append((units, pitch_features(qf0, tok.speaker_log2_f0[r["speaker"]]), style, target, voice))
    durations = [x for x in (duration_examples(tok, r) for r in rows) if x is not None]
    allt = np.concatenate([d[3] for d in data])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = UnitVocoder(config)
    model.target_mean.copy_(torch.from_numpy(allt.mean(0)))
    model.target_std.copy_(torch.from_numpy(allt.std(0) + 1e-5))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "a")
    t0 = time.time()
    for step in tqdm(range(1, steps + 1), desc="vocoder", disable=not progress):
        batch = [data[i] for i in rng.integers(0, len(data), batch_size)]
        u, p, s, y = [], [], [], []
        for units, pf, style, target, _ in batch:
            start = int(rng.integers(0, max(1, len(target) - crop_frames)))
            sl = slice(start, start + crop_frames)
            pad = crop_frames - len(target[sl])
            u.append(np.pad(units[sl], (0, pad), mode="edge"))
            s.append(np.pad(style[sl], (0, pad), mode="edge"))
            p.append(np.pad(pf[sl], ((0, pad), (0, 0)), mode="edge"))
            y.append(np.pad(target[sl], ((0, pad), (0, 0)), mode="edge"))
        voice = torch.tensor([b[4] for b in batch]) if config.speakers else None
        pred = model(torch.from_numpy(np.stack(u)), torch.from_numpy(np.stack(p)), torch.from_numpy(np.stack(s)),
                     voice)
        y = (torch.from_numpy(np.stack(y)) - model.target_mean) / model.target_std
        l1 = loss = (pred - y).abs().mean()
        dur_mse = torch.zeros(())
        if model.duration is not None and durations:
            du, dp, ds, dd, dm = _duration_batch(durations, rng, batch_size)
            err = (model.duration(du, dp, ds) - torch.log1p(dd)) ** 2
            dur_mse = (err * dm).sum() / dm.sum()
            loss = loss + dur_mse
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            log.write(json.dumps({"step": step, "l1": float(l1), "duration_mse": float(dur_mse),
                                  "seconds": round(time.time() - t0, 1)}) + "\n")
            log.flush()
    log.close()
    save_checkpoint(out / "vocoder.pt", "vocoder", {"model_version": VOCODER_VERSION, "config": config.to_dict(),
                                                    "model": model.state_dict(), "steps": steps})
    return out


def _vocoder_checkpoint(folder: str | Path) -> dict:
    return load_model_checkpoint(Path(folder) / "vocoder.pt", "vocoder", VOCODER_VERSION, VocoderError,
                                 "speechvision speechlm vocoder", "vocoder")


def _vocoder_from(ckpt: dict) -> UnitVocoder:
    model = UnitVocoder(VocoderConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_vocoder(folder: str | Path) -> UnitVocoder:
    return _vocoder_from(_vocoder_checkpoint(folder))


def choose_voice(tokenizer_dir: str | Path, vocoder_dir: str | Path, *, split: str = "val", limit: int = 24,
                 progress: bool = True) -> dict:
    """Set a voice-conditioned vocoder's ``default_voice`` (the voice held-out speakers are rendered in) to
    the training voice whose decodes of the first ``limit`` utterances of ``split`` the offline Whisper
    transcribes with the lowest WER; rewrites ``vocoder.pt`` atomically and appends the per-voice WERs to
    its ``log.jsonl``.

    Returns:
        {"split", "n", "wer": {voice: WER, "original": WER of the recordings}, "default_voice"}.
    Raises:
        VocoderError: the vocoder is not voice-conditioned, or the split is empty.
    """
    from tqdm import tqdm

    from speechvision.avlm.evaluate import transcribe, word_error_rate

    ckpt = _vocoder_checkpoint(vocoder_dir)
    speaker = Speaker(ExpressiveTokenizer.load(tokenizer_dir), _vocoder_from(ckpt))
    voices = list(speaker.vocoder.config.speakers)
    if not voices:
        raise VocoderError(f"{vocoder_dir}: the vocoder is not voice-conditioned; train it with --voice-conditioned")
    rows = load_encoded(tokenizer_dir, split)[:limit]
    if not rows:
        raise VocoderError(f"{tokenizer_dir}: no {split} utterances to choose a voice on")
    refs = [r["text"] for r in rows]
    wer = {"original": word_error_rate(refs, [transcribe(read_wave(r["audio"])) for r in rows])}
    for v in tqdm(voices, desc="voices", disable=not progress):
        wer[v] = word_error_rate(refs, [transcribe(speaker.decode(r["tokens"], r["speaker"], voice=v)) for r in rows])
    best = min(voices, key=lambda v: wer[v])
    save_checkpoint(Path(vocoder_dir) / "vocoder.pt", "vocoder",
                    {**checkpoint_state(ckpt), "config": {**ckpt["config"], "default_voice": best}})
    result = {"split": split, "n": len(rows), "wer": {k: round(x, 4) for k, x in wer.items()}, "default_voice": best}
    with open(Path(vocoder_dir) / "log.jsonl", "a") as f:
        f.write(json.dumps({"choose_voice": result}) + "\n")
    return result


class Speaker:
    """Turns token sequences into speech: tokenizer (clock, F0) + vocoder (timbre) + WORLD."""

    def __init__(self, tokenizer: ExpressiveTokenizer, vocoder: UnitVocoder):
        self.tok, self.vocoder = tokenizer, vocoder

    @staticmethod
    def load(tokenizer_dir: str | Path, vocoder_dir: str | Path) -> "Speaker":
        return Speaker(ExpressiveTokenizer.load(tokenizer_dir), load_vocoder(vocoder_dir))

    @torch.no_grad()
    def decode(self, tokens: list[int], speaker: str | None = None, speaker_log2_f0: float | None = None,
               rate: float = 1.0, voice: str | None = None) -> np.ndarray:
        """(N,) float32 waveform at the tokenizer's rate for an interleaved token sequence.

        F0 is the bin centre of each pitch token relative to the speaker's mean (``speaker`` fitted or
        enrolled, or ``speaker_log2_f0`` given; otherwise the mean over known speakers). Each unit lasts
        its predicted duration (the vocoder's duration predictor), or its corpus-mean run length when the
        vocoder has none; ``rate`` > 1 speaks faster. A voice-conditioned vocoder renders the timbre of
        ``voice``, else of ``speaker`` when it is a training voice, else (held-out speakers) of its
        ``default_voice``, else of the training voice whose mean F0 is nearest the speaker's.

        Raises:
            TokenizerError: the sequence holds no content unit.
        """
        streams = self.tok.split_streams(tokens)
        mean = speaker_log2_f0 if speaker_log2_f0 is not None else self.tok.speaker_mean(speaker)
        per = int(round(100 / self.tok.config.unit_hz))
        v = self.vocoder
        if v.duration is not None:
            u, p, s = (torch.from_numpy(a)[None] for a in _unit_inputs(self.tok, streams, mean))
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
        return world_synthesize(f0, coded, v.config)


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
