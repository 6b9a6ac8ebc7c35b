"""AVLM training on the audio-visual emotion set: masked pre-training and emotion-recognition fine-tuning,
and the seeded comparison of fusion strategies and visual encoders.

Data: clips of ``speechvision data av-emotion`` (faces) with the speech tokens of their audio from
``speechvision speechlm tokenize`` (``encoded.jsonl``, by ``audio_id``). Sequences are
``<bos> [Speech] speech tokens <eos>``; the AVLM inserts the visual prefix itself.

The model starts from a trained speech LM (``speechvision speechlm train``), as AVLM starts from
SpiritLM; visual modules and the emotion head start random. Checkpoints hold the AVLM config, the LM
config, the state dict and the version (kind "avlm"), written atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speechvision.avlm.data.av_emotion import load_av_emotion, render_face
from speechvision.avlm.data.spoken_emotion import EMOTIONS
from speechvision.avlm.model import (
    AVLM,
    AVLMConfig,
    AVLMError,
    build_avlm,
    collate,
    mask_speech_tokens,
    save_avlm,
)
from speechvision.avlm.visual import visual_input


def load_clips(av_dir, tokens_dir, split: str, encoder: str, crop_size_px: int = 32) -> list[dict]:
    """Clips of one split with ``tokens`` (list of ids), ``visual`` ((T, 136) float32 expression features,
    (T, S, S) uint8 aligned crops of the rendered faces, or for ``fer`` (T, 256) float32 frozen FER features
    of the rendered faces), ``emotion`` index and ``ambiguous``.

    Raises:
        AVLMError: a clip's audio has no encoded tokens.
    """
    from speechvision.avlm.corpus import load_encoded

    _, rows, faces = load_av_emotion(av_dir, split)
    enc = {r["id"]: r["tokens"] for r in load_encoded(tokens_dir)}
    clips = []
    for r in rows:
        if r["audio_id"] not in enc:
            raise AVLMError(f"{Path(tokens_dir) / 'encoded.jsonl'}: no tokens for {r['audio_id']} (clip {r['id']}); "
                            "tokenize the same spoken-emotion corpus the set was built from")
        visual = _visual(av_dir, r["id"], faces[r["id"]], encoder, crop_size_px)
        clips.append({"id": r["id"], "tokens": enc[r["audio_id"]], "visual": visual,
                      "emotion": EMOTIONS.index(r["emotion"]), "ambiguous": r["ambiguous"]})
    return clips


def _visual(av_dir, clip_id: str, landmarks: np.ndarray, encoder: str, crop_size_px: int) -> np.ndarray:
    """One clip's ``visual_input`` on its rendered faces, computed once per process (rendering and the frozen
    FER network are the slow part of a run; the arrays are never modified in place)."""
    key = (str(Path(av_dir).resolve()), clip_id, encoder, crop_size_px)
    if key not in _VISUAL_CACHE:
        _VISUAL_CACHE[key] = visual_input(encoder, landmarks, lambda: np.stack([render_face(f) for f in landmarks]),
                                          crop_size_px=crop_size_px)
    return _VISUAL_CACHE[key]


def make_optimizer(model: AVLM, lr: float, visual_lr: float) -> tuple[torch.optim.Optimizer, list[float]]:
    """AdamW with two groups, the speech LM at ``lr`` and the new modules (visual encoder, fusion, heads) at
    ``visual_lr``; returns (optimizer, base learning rates) for the warm-up."""
    visual_params = [p for n, p in model.named_parameters() if not n.startswith("lm.")]
    opt = torch.optim.AdamW([{"params": list(model.lm.parameters()), "lr": lr},
                             {"params": visual_params, "lr": visual_lr}], weight_decay=0.01)
    return opt, [lr, visual_lr]


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield slice(i, i + batch_size)


@torch.no_grad()
def masked_perplexity(model: AVLM, clips: list[dict], vocab, mask_ratio: float, *, seed: int = 0,
                      batch_size: int = 16) -> float:
    """exp(mean NLL) of the unmasked speech tokens with ``mask_ratio`` of the input speech tokens masked
    (AVLM compares strategies at 0.7); the masks are drawn from ``seed``, the same for every model."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    nll, count = 0.0, 0
    for sl in _batches(len(clips), batch_size):
        b = collate(clips[sl], vocab)
        ids, labels = mask_speech_tokens(b["ids"], b["attention_mask"], vocab, mask_ratio, gen)
        out = model(ids, b["attention_mask"], b["visual"], b["visual_mask"], labels=labels)
        lab = out["labels"][:, 1:]
        lp = torch.log_softmax(out["logits"][:, :-1].float(), -1)
        valid = lab != -100
        nll -= float(lp.gather(-1, lab.clamp_min(0)[..., None])[..., 0][valid].sum())
        count += int(valid.sum())
    return math.exp(nll / max(count, 1))


def _face_order(n: int, seed: int) -> list[int]:
    """A derangement-like permutation (no clip keeps its own face) for the shuffled-face control."""
    rng = np.random.default_rng(seed + 7919)
    perm = rng.permutation(n)
    return [int(x) for x in np.roll(perm, 1)[np.argsort(perm)]]


def train_avlm(av_dir, tokens_dir, lm_dir, out, config: AVLMConfig, *, pretrain_steps: int = 300,
               finetune_steps: int = 400, batch_size: int = 16, lr: float = 3e-4, visual_lr: float = 1e-3,
               mask_ratio: float = 0.3, seed: int = 0, shuffle_faces: bool = False, progress: bool = True) -> dict:
    """Masked pre-training (``pretrain_steps``, speech tokens masked at ``mask_ratio``, loss on unmasked), then
    emotion fine-tuning (``finetune_steps``, class-balanced batches, cross-entropy on the emotion head plus
    the unmasked next-token loss), then test metrics. ``shuffle_faces`` pairs every clip with another clip's
    face, in training and test (the control). Writes ``avlm.pt``, ``metrics.json`` and ``log.jsonl``.

    Returns the metrics dict: test accuracy, balanced accuracy, macro-F1 (all clips and the ambiguous ones)
    and the test perplexity at mask ratio 0.7.
    """
    from tqdm import tqdm

    from speechvision.avlm.judges import classification_report
    from speechvision.avlm.lm import load_lm_checkpoint
    from speechvision.avlm.tokens import ExpressiveTokenizer

    vocab = ExpressiveTokenizer.load(tokens_dir).vocab
    train = load_clips(av_dir, tokens_dir, "train", config.visual_encoder, config.crop_size_px)
    test = load_clips(av_dir, tokens_dir, "test", config.visual_encoder, config.crop_size_px)
    torch.manual_seed(seed)
    model = build_avlm(lm_dir, vocab, config)
    lm_config = load_lm_checkpoint(lm_dir)["config"]
    opt, base_lrs = make_optimizer(model, lr, visual_lr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "a")
    train_order = _face_order(len(train), seed) if shuffle_faces else None
    by_class = [np.flatnonzero([c["emotion"] == k for c in train]) for k in range(len(EMOTIONS))]
    total = pretrain_steps + finetune_steps
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in tqdm(range(1, total + 1), desc=f"avlm {config.fusion}/{config.visual_encoder}", disable=not progress):
        rng = np.random.default_rng(seed * 1_000_003 + step)
        finetune = step > pretrain_steps
        if finetune:  # class-balanced: each batch draws classes uniformly
            idx = [int(rng.choice(by_class[k])) for k in rng.integers(0, len(EMOTIONS), batch_size)]
        else:
            idx = [int(i) for i in rng.integers(0, len(train), batch_size)]
        clips = [train[i] for i in idx]
        faces = None if train_order is None else [train[train_order[i]] for i in idx]
        b = collate(clips if faces is None else [dict(c, visual=f["visual"]) for c, f in zip(clips, faces)], vocab)
        ids, labels = mask_speech_tokens(b["ids"], b["attention_mask"], vocab, 0.0 if finetune else mask_ratio, gen)
        warm = min(1.0, step / max(1, total // 20))
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * warm
        model.train()
        o = model(ids, b["attention_mask"], b["visual"], b["visual_mask"], labels=labels)
        loss = o["loss"] + (F.cross_entropy(o["emotion_logits"], b["emotion"]) if finetune else 0.0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == total:
            log.write(json.dumps({"step": step, "phase": "finetune" if finetune else "pretrain",
                                  "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)}) + "\n")
            log.flush()
    log.close()
    model.eval()
    if shuffle_faces:  # every test clip with another clip's face, for the predictions and the perplexity
        test = [dict(c, visual=test[j]["visual"]) for c, j in zip(test, _face_order(len(test), seed))]
    preds = []
    with torch.no_grad():
        for sl in _batches(len(test), 32):
            b = collate(test[sl], vocab)
            preds += model(b["ids"], b["attention_mask"], b["visual"], b["visual_mask"])["emotion_logits"].argmax(-1).tolist()
    truth = [c["emotion"] for c in test]
    amb = [i for i, c in enumerate(test) if c["ambiguous"]]
    names = list(EMOTIONS)
    metrics = {"fusion": config.fusion, "visual_encoder": config.visual_encoder, "seed": seed,
               "shuffle_faces": shuffle_faces,
               "test": classification_report([names[t] for t in truth], [names[p] for p in preds]),
               "test_ambiguous": classification_report([names[truth[i]] for i in amb], [names[preds[i]] for i in amb]),
               "test_perplexity_mask0.7": masked_perplexity(model, test, vocab, 0.7, seed=1234),
               "steps": {"pretrain": pretrain_steps, "finetune": finetune_steps}, "seconds": round(time.time() - t0, 1)}
    save_avlm(out / "avlm.pt", model, lm_config, {"step": total, "metrics": metrics})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "config.json").write_text(json.dumps({"avlm": asdict(config), "pretrain_steps": pretrain_steps,
                                                 "finetune_steps": finetune_steps, "batch_size": batch_size, "lr": lr,
                                                 "visual_lr": visual_lr, "mask_ratio": mask_ratio, "seed": seed,
                                                 "shuffle_faces": shuffle_faces, "av": str(Path(av_dir).resolve()),
                                                 "tokens": str(Path(tokens_dir).resolve()),
                                                 "lm": str(Path(lm_dir).resolve())}, indent=2))
    return metrics


def t_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % Student-t interval) over seeds."""
    from scipy import stats

    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def _run_dir(out: Path, fusion: str, encoder: str, seed: int, control: bool = False) -> Path:
    name = "speech-only" if fusion == "speech-only" else f"{fusion}+{encoder}"
    return out / f"{name}{'-shuffled' if control else ''}-s{seed}"


def compare_avlm(av_dir, tokens_dir, lm_dir, out, *, fusions=("speech-only", "concat", "perceiver", "cross-attention"),
                 encoders=("landmark-conv",), seeds=(0, 1, 2), control: bool = True, progress: bool = True,
                 **train_kw) -> dict:
    """Train every fusion x visual encoder (speech-only once) for each seed, then the shuffled-face control
    of the best audio-visual configuration; runs whose ``metrics.json`` exists are kept (resumable).
    Writes ``summary.json`` and ``summary.md`` (mean and 95 % t-interval over seeds; differences to the
    speech-only baseline paired by seed)."""
    out = Path(out)
    configs = [("speech-only", encoders[0])] if "speech-only" in fusions else []
    configs += [(f, e) for f in fusions if f != "speech-only" for e in encoders]

    def run(fusion, encoder, seed, shuffled=False):
        d = _run_dir(out, fusion, encoder, seed, shuffled)
        if (d / "metrics.json").is_file():
            return json.loads((d / "metrics.json").read_text())
        return train_avlm(av_dir, tokens_dir, lm_dir, d, AVLMConfig(fusion=fusion, visual_encoder=encoder), seed=seed,
                          shuffle_faces=shuffled, progress=progress, **train_kw)

    results = {(f, e): [run(f, e, s) for s in seeds] for f, e in configs}
    av = [c for c in configs if c[0] != "speech-only"]
    best = max(av, key=lambda c: np.mean([m["test"]["macro_f1"] for m in results[c]])) if av else None
    controls = [run(best[0], best[1], s, True) for s in seeds] if control and best else []
    summary = summarize(results, controls, best)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary_table(summary))
    return summary


def summarize(results: dict, controls: list, best) -> dict:
    def stats(ms):
        keys = {"macro_f1": lambda m: m["test"]["macro_f1"], "accuracy": lambda m: m["test"]["accuracy"],
                "balanced_accuracy": lambda m: m["test"]["balanced_accuracy"],
                "macro_f1_ambiguous": lambda m: m["test_ambiguous"]["macro_f1"],
                "ppl_mask0.7": lambda m: m["test_perplexity_mask0.7"]}
        return {k: dict(zip(("mean", "ci95"), t_interval([f(m) for m in ms]))) | {"seeds": [f(m) for m in ms]}
                for k, f in keys.items()}

    rows = []
    base = next((ms for (f, _), ms in results.items() if f == "speech-only"), None)
    for (f, e), ms in results.items():
        row = {"fusion": f, "visual_encoder": None if f == "speech-only" else e, **stats(ms)}
        if base is not None and f != "speech-only":
            for k, sub in (("macro_f1", "test"), ("macro_f1_ambiguous", "test_ambiguous")):
                d = [a[sub]["macro_f1"] - b[sub]["macro_f1"] for a, b in zip(ms, base)]
                row[f"delta_{k}_vs_speech_only"] = dict(zip(("mean", "ci95"), t_interval(d))) | {"seeds": d}
        rows.append(row)
    out = {"rows": rows, "best": list(best) if best else None, "synthetic": True}
    if controls:
        row = {"fusion": best[0], "visual_encoder": best[1], "shuffled_faces": True, **stats(controls)}
        if base is not None:
            d = [a["test"]["macro_f1"] - b["test"]["macro_f1"] for a, b in zip(controls, base)]
            row["delta_macro_f1_vs_speech_only"] = dict(zip(("mean", "ci95"), t_interval(d))) | {"seeds": d}
        out["control"] = row
    return out


def summary_table(summary: dict) -> str:
    def f(x, pct=True):
        s = 100 if pct else 1
        return f"{x['mean'] * s:.1f} ± {x['ci95'] * s:.1f}" if x["ci95"] == x["ci95"] else f"{x['mean'] * s:.1f}"

    head = ("| fusion | visual encoder | macro-F1 | accuracy | balanced acc. | macro-F1 (ambiguous audio) | "
            "Δ macro-F1 vs speech-only | Δ macro-F1 ambiguous | ppl @ mask 0.7 |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in summary["rows"] + ([summary["control"]] if "control" in summary else []):
        name = r["fusion"] + (" (faces shuffled: control)" if r.get("shuffled_faces") else "")
        d = r.get("delta_macro_f1_vs_speech_only")
        da = r.get("delta_macro_f1_ambiguous_vs_speech_only")
        lines.append(f"| {name} | {r['visual_encoder'] or '—'} | {f(r['macro_f1'])} | {f(r['accuracy'])} | "
                     f"{f(r['balanced_accuracy'])} | {f(r['macro_f1_ambiguous'])} | {f(d) if d else '—'} | "
                     f"{f(da) if da else '—'} | {f(r['ppl_mask0.7'], pct=False)} |")
    return head + "\n".join(lines) + "\n"


_VISUAL_CACHE: dict = {}  # (av folder, clip, encoder, crop size) -> visual input; a comparison reuses it
