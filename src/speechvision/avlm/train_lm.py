"""Next-token training of the speech LM on interleaved expressive tokens; test perplexity.

A training sequence is one dialogue turn pair of the same emotion (question then response, as the
corpus's dialogues are), ``<bos> [Speech] question tokens [Speech] response tokens <eos>``, so the model
sees prosody carried across an utterance boundary. Checkpoints (``lm.pt``: config, step, model and
optimizer state, version) are written atomically; ``--resume`` continues exactly from the last one.
The checkpoint with the lowest validation perplexity so far is also kept (``best.pt``, early stopping by
selection), and ``load_lm`` loads it when present: the corpus is small and the LM overfits.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from speechvision.avlm.lm import (
    LM_VERSION,
    SpeechLMConfig,
    SpeechLMError,
    build_lm,
    load_lm_checkpoint,
)
from speechvision.avlm.vocabulary import Vocabulary
from speechvision.core.checkpoint import save_checkpoint


def sequences(rows: list[dict], vocab: Vocabulary) -> list[list[int]]:
    """Token sequences of dialogues: question + response of the same dialogue and emotion, or single
    utterances when a pair is incomplete."""
    bos, eos, sp = vocab.special("<bos>"), vocab.special("<eos>"), vocab.special("[Speech]")
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("dialogue"), r["emotion"]), []).append(r)
    out = []
    for key in sorted(groups, key=str):
        g = sorted(groups[key], key=lambda r: r.get("role") != "question")
        seq = [bos]
        for r in g:
            seq += [sp] + r["tokens"]
        out.append(seq + [eos])
    return out


def _batch(seqs: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(max_len, max(len(s) for s in seqs))
    ids = torch.zeros(len(seqs), n, dtype=torch.long)
    labels = torch.full((len(seqs), n), -100, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[:n]
        ids[i, :len(s)] = torch.tensor(s)
        labels[i, :len(s)] = torch.tensor(s)
    return ids, labels


@torch.no_grad()
def perplexity(model, seqs: list[list[int]], *, offset: int = 0, max_len: int = 1024, batch_size: int = 16) -> float:
    """exp(mean next-token negative log-likelihood) over all predicted tokens (after <bos>) of ``seqs``."""
    model.eval()
    nll, count = 0.0, 0
    for i in range(0, len(seqs), batch_size):
        ids, labels = _batch(seqs[i:i + batch_size], max_len)
        logits = model(input_ids=ids + offset * (labels != -100)).logits[:, :-1, offset:]
        tgt = labels[:, 1:]
        lp = torch.log_softmax(logits.float(), -1)
        valid = tgt != -100
        nll -= float(lp.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1)[valid].sum())
        count += int(valid.sum())
    return math.exp(nll / max(count, 1))


def train_speech_lm(tokens_dir: str | Path, out: str | Path, config: SpeechLMConfig | None = None, *,
                    steps: int = 1500, batch_size: int = 16, lr: float = 1e-3, max_len: int = 512,
                    seed: int = 0, resume: bool = False, progress: bool = True, eval_every: int = 250,
                    stop_after: int | None = None) -> Path:
    """Train on the train split of ``tokens_dir/encoded.jsonl``, evaluating val perplexity as it goes.

    A checkpoint is written every ``eval_every`` steps; ``resume=True`` continues from it exactly (same
    data order and learning-rate schedule, which depends on ``steps``). ``stop_after`` ends this run after
    that step, as a time-boxed job or a kill would (then resume).
    """
    from tqdm import tqdm

    from speechvision.avlm.corpus import load_encoded
    from speechvision.avlm.tokens import ExpressiveTokenizer

    tok = ExpressiveTokenizer.load(tokens_dir)
    vocab = tok.vocab
    train, val = sequences(load_encoded(tokens_dir, "train"), vocab), sequences(load_encoded(tokens_dir, "val"), vocab)
    if not train:
        raise SpeechLMError(f"{tokens_dir}: no train utterances in encoded.jsonl")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = config or SpeechLMConfig()
    config.vocab_size = vocab.size
    torch.manual_seed(seed)
    model = build_lm(config)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01,
                            betas=(0.9, 0.98))
    start, best = 0, math.inf
    if resume and (out / "best.pt").is_file():
        best = load_lm_checkpoint(out, "best.pt").get("val_ppl", math.inf)
    if resume and (out / "lm.pt").is_file():
        ck = load_lm_checkpoint(out)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start = ck["step"]
    (out / "config.json").write_text(json.dumps({"lm": config.to_dict(), "steps": steps, "batch_size": batch_size,
                                                 "lr": lr, "max_len": max_len, "seed": seed,
                                                 "tokens": str(Path(tokens_dir).resolve())}, indent=2))

    def lr_at(step):  # warmup 5%, cosine to 10%
        w = max(1, steps // 20)
        return lr * (step / w if step < w else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, steps - w))))

    log = open(out / "log.jsonl", "a")
    t0 = time.time()
    last = steps if stop_after is None else min(steps, stop_after)
    for step in tqdm(range(start + 1, last + 1), desc="speech LM", initial=start, total=steps, disable=not progress):
        rng = np.random.default_rng(seed * 1_000_003 + step)  # per-step generator: resume is exact
        batch = [train[i] for i in rng.integers(0, len(train), batch_size)]
        ids, labels = _batch(batch, max_len)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        model.train()
        loss = model(input_ids=ids + config.offset * (labels != -100),
                     labels=torch.where(labels == -100, labels, labels + config.offset)).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % eval_every == 0 or step == last:
            entry = {"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)}
            if val:
                entry["val_ppl"] = round(perplexity(model, val, offset=config.offset, max_len=max_len), 3)
            log.write(json.dumps(entry) + "\n")
            log.flush()
            _save(out, model, opt, config, step)
            if entry.get("val_ppl", math.inf) < best:
                best = entry["val_ppl"]
                _save(out, model, None, config, step, name="best.pt", val_ppl=best)
    log.close()
    return out


def _save(out: Path, model, opt, config: SpeechLMConfig, step: int, name: str = "lm.pt", **extra) -> None:
    state = {"model_version": LM_VERSION, "config": asdict(config), "step": step, "model": model.state_dict(), **extra}
    if opt is not None:
        state["optimizer"] = opt.state_dict()
    save_checkpoint(out / name, "speech-lm", state)
