"""A tokenized speech corpus: read waves, fit the expressive tokenizer on the train split, encode every
utterance (``encoded.jsonl``), and read the encoded rows back (``speechvision speechlm tokenize``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechvision.avlm.data.spoken_emotion import load_corpus
from speechvision.avlm.tokens import ExpressiveTokenizer, TokenizerConfig, fit_tokenizer
from speechvision.avlm.vocabulary import TokenizerError
from speechvision.core.atomic import atomic_write_text


def read_wave(path: str | Path, sample_rate_hz: int = 16000) -> np.ndarray:
    """(N,) float32 mono waveform at ``sample_rate_hz`` through the project's audio front-end checks."""
    from speechvision.core.audio import load_audio

    return load_audio(path, sample_rate_hz=sample_rate_hz)


def tokenize_corpus(corpus: str | Path, out: str | Path, config: TokenizerConfig = TokenizerConfig(), *,
                    tokenizer: str | Path | None = None, progress: bool = True) -> Path:
    """Fit the tokenizer on the corpus's train split and encode every utterance into ``encoded.jsonl``.

    Speakers outside the train split (the held-out test voices) get their mean F0 from their own
    utterances before encoding (speaker enrolment on unlabelled audio, as speaker normalisation needs).

    Args:
        tokenizer: a folder holding an already fitted tokenizer (``tokenizer.json``, e.g. the bundled AVLM
            stack's folder). Then nothing is fitted and ``config`` is ignored: the corpus is encoded with that
            tokenizer, so a vocoder or LM trained on its units reads the new tokens; voices it does not know
            are enrolled from their own utterances, voices it knows keep their fitted statistics. The
            written ``out`` holds a copy of it.
    Raises:
        TokenizerError: ``tokenizer`` holds no tokenizer of this version.
    """
    from tqdm import tqdm

    corpus, out = Path(corpus), Path(out)
    fitted = ExpressiveTokenizer.load(tokenizer) if tokenizer is not None else None
    config = fitted.config if fitted is not None else config
    _, rows = load_corpus(corpus)
    train = [r for r in rows if r["split"] == "train"]
    waves = {r["id"]: read_wave(corpus / r["audio"], config.sample_rate_hz)
             for r in tqdm(rows, desc="reading audio", unit="utt", disable=not progress)}
    from speechvision.avlm.tokens import unit_features

    feats = {r["id"]: unit_features(waves[r["id"]], config)
             for r in tqdm(rows, desc=f"{config.unit_features} features", unit="utt", disable=not progress)}
    tok = fitted or fit_tokenizer([waves[r["id"]] for r in train], [r["voice"] for r in train], config,
                                  progress=progress, unit_feats=[feats[r["id"]] for r in train])
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
                                 "style_frames": e.style_frames.tolist(),
                                 "level_frames": e.level_frames.tolist()}) + "\n")
    atomic_write_text(out / "encoded.jsonl", "".join(lines))
    return out


def add_speakers(tok: ExpressiveTokenizer, waves_by_speaker: dict) -> None:
    """Enrol speakers: their mean log2 F0 over the voiced frames of the given waveforms and, when the
    tokenizer has a level stream, their mean active level."""
    from speechvision.avlm.tokens import active_level_db, f0_track, speaker_levels

    rate = tok.config.sample_rate_hz
    for spk, waves in (waves_by_speaker or {}).items():
        lf = [np.log2(f[f > 0]) for f in (f0_track(w, rate) for w in waves)]
        lf = np.concatenate(lf) if lf else np.zeros(0)
        if len(lf):
            tok.speaker_log2_f0[spk] = float(lf.mean())
        if tok.config.n_level_bins:
            tok.speaker_level_db.update(speaker_levels({spk: [active_level_db(w, rate) for w in waves]}))


def load_encoded(folder: str | Path, split: str | None = None) -> list[dict]:
    path = Path(folder) / "encoded.jsonl"
    if not path.is_file():
        raise TokenizerError(f"{path}: missing; run `speechvision speechlm tokenize` first")
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in rows if split is None or r["split"] == split]
