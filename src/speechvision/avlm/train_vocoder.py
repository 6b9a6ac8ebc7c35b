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

from speechvision.avlm.corpus import load_encoded, read_wave
from speechvision.avlm.tokens import ExpressiveTokenizer
from speechvision.avlm.vocabulary import collapse
from speechvision.avlm.vocoder import (
    VOCODER_VERSION,
    EnvelopeNetwork,
    UnitVocoder,
    VocoderConfig,
    VocoderError,
    frame_inputs,
    pitch_features,
    unit_inputs,
    vocoder_checkpoint,
    vocoder_from_checkpoint,
    world_targets,
)
from speechvision.core.checkpoint import checkpoint_state, save_checkpoint

# --- vocoder -------------------------------------------------------------------------------------------------

def duration_examples(tok: ExpressiveTokenizer, row: dict) -> tuple[np.ndarray, ...] | None:
    """(units, pitch features, style, run lengths in unit frames) of one encoded utterance, or None when the
    token sequence and the frame stream disagree (cannot happen for ``encode``'s output)."""
    streams = tok.split_streams(row["tokens"])
    kept, starts = collapse(np.asarray(row["unit_frames"]))
    if len(kept) != len(streams["units"]) or not np.array_equal(kept, streams["units"]):
        return None
    runs = np.diff(np.append(starts, len(row["unit_frames"])))
    return (*unit_inputs(tok, streams, tok.speaker_log2_f0[row["speaker"]]), runs.astype(np.float32))


def _duration_batch(items: list[tuple], rng: np.random.DSG, batch_size: int) -> tuple[torch.Tensor, ...]:
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
        units, qf0, style = frame_inputs(tok, r["unit_frames"], r["pitch_frames"], r["style_frames"],
                                          tok.speaker_log2_f0[r["speaker"]], n)
        voice = config.speakers.index(r["speaker"]) if r["speaker"] in config.speakers else 0
        data.append((units, pitch_features(qf0, tok.speaker_log2_f0[r["speaker"]]), style, target, voice))
    durations = [x for x in (duration_examples(tok, r) for r in rows) if x is not None]
    allt = np.concatenate([d[3] for d in data])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = EnvelopeNetwork(config)
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


def train_vocoder_and_voice(tokenizer_dir: str | Path, out: str | Path, *, steps: int = 3000,
                            voice_conditioned: bool = True, hidden: int = 256, choose_voice_n: int = 80,
                            progress: bool = True) -> dict:
    """``speechvision speechlm vocoder``: train the envelope network (:func:`train_vocoder`) and, when it is
    voice-conditioned and ``choose_voice_n`` > 0, choose the voice of held-out speakers on ``choose_voice_n``
    validation utterances (:func:`choose_voice`). Returns ``{"vocoder": path, "choose_voice": result or None}``."""
    cfg = vocoder_config(tokenizer_dir, voice_conditioned=voice_conditioned, hidden=hidden)
    path = train_vocoder(tokenizer_dir, out, steps=steps, config=cfg, progress=progress)
    chosen = (choose_voice(tokenizer_dir, out, limit=choose_voice_n, progress=progress)
              if cfg.speakers and choose_voice_n > 0 else None)
    return {"vocoder": str(path), "choose_voice": chosen}


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

    from speechvision.avlm.judges import transcribe, word_error_rate

    ckpt = vocoder_checkpoint(vocoder_dir)
    speaker = UnitVocoder(ExpressiveTokenizer.load(tokenizer_dir), vocoder_from_checkpoint(ckpt))
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
