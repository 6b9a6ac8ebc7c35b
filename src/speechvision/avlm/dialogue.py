"""Expressive-dialogue fine-tuning of the AVLM (Tan et al., Findings of EMNLP 2025, sec. 3.3) and its evaluation.

A dialogue example is a question clip of the audio-visual set (the face and the question's speech tokens)
and the response of the same dialogue spoken in the clip's emotion (spoken-emotion corpus, another voice).
The sequence is ``avlm.model.dialogue_prompt``: instruction, visual, question speech, ``<emotion:X>
<response>``, response speech. Training: masked pre-training on all clips (as ``train_avlm``), then
fine-tuning with the next-token loss on the emotion token and the response, plus a cross-entropy over the
four emotion tokens at the emotion position (so the one recognition token is not drowned by ~70 response
tokens). In clips with ambiguous audio the question is spoken neutrally while the face and the target
response carry the emotion, so the face must set the reply's emotion.

Evaluation (``evaluate_dialogue``): for each test (or, for choices, validation) question clip the model
predicts the emotion (argmax over the four emotion tokens) or is given the true one (``force_emotion``),
samples a response (speech tokens only), and the unit vocoder speaks it in the response voice. Generated
replies are judged by the speech emotion classifier trained on the corpus's real recordings
(``avlm.judges.train_judge``), transcribed by the offline Whisper (WER against the reference response
text) and scored by DNSMOS.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speechvision.avlm.data.av_emotion import load_av_emotion
from speechvision.avlm.data.spoken_emotion import EMOTIONS, content_recall, heard_as_answer
from speechvision.avlm.model import (
    AVLM,
    AVLMConfig,
    AVLMError,
    build_avlm,
    collate,
    dialogue_prompt,
    emotion_token_ids,
    load_avlm,
    mask_speech_tokens,
    predict_emotion,
    sample_response,
    save_avlm,
)
from speechvision.avlm.train import load_clips, make_optimizer


def load_dialogues(av_dir, tokens_dir, split: str, encoder: str, crop_size_px: int = 32,
                   clips: list[dict] | None = None) -> list[dict]:
    """Question clips of ``split`` with their response: ``question`` and ``response`` token lists, ``visual``,
    ``emotion`` index, ``ambiguous``, ``response_text``, ``response_voice``. ``clips``: that split's
    ``load_clips`` when the caller has them already.

    Raises:
        AVLMError: a question's response has no encoded tokens.
    """
    from speechvision.avlm.corpus import load_encoded

    _, rows, _ = load_av_emotion(av_dir, split)
    role = {r["id"]: r for r in rows}
    responses = {(r["dialogue"], r["emotion"]): r for r in load_encoded(tokens_dir, split) if r["role"] == "response"}
    out = []
    for c in clips if clips is not None else load_clips(av_dir, tokens_dir, split, encoder, crop_size_px):
        r = role[c["id"]]
        if r["role"] != "question":
            continue
        resp = responses.get((r["dialogue"], r["emotion"]))
        if resp is None:
            raise AVLMError(f"{Path(tokens_dir) / 'encoded.jsonl'}: no response of dialogue {r['dialogue']} in "
                            f"{r['emotion']} for clip {c['id']}")
        out.append(dict(c, question=c["tokens"], response=resp["tokens"], response_text=resp["text"],
                        response_voice=resp["speaker"], response_id=resp["id"]))
    return out


def collate_dialogues(items: list[dict], vocab, *, with_response: bool = True) -> dict:
    """Padded batch: ``ids``, ``attention_mask``, ``labels`` (B, L) (loss on the emotion token and everything
    after it), ``visual`` (B, Tv, ...), ``visual_mask`` (B, Tv), ``emotion`` (B,)."""
    seqs = [dialogue_prompt(vocab, it["question"], EMOTIONS[it["emotion"]], it["response"] if with_response else None)
            for it in items]
    n = max(map(len, seqs))
    ids = torch.zeros(len(seqs), n, dtype=torch.long)
    am = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (s, it) in enumerate(zip(seqs, items)):
        ids[i, :len(s)], am[i, :len(s)] = torch.tensor(s), 1
        first = 3 + len(it["question"])  # the emotion token
        labels[i, first:len(s)] = ids[i, first:len(s)]
    vis = collate([{"tokens": [], "visual": it["visual"], "emotion": it["emotion"]} for it in items], vocab)
    return {"ids": ids, "attention_mask": am, "labels": labels, "visual": vis["visual"],
            "visual_mask": vis["visual_mask"], "emotion": vis["emotion"]}


def dialogue_loss(model: AVLM, batch: dict, vocab) -> tuple[torch.Tensor, dict]:
    """Next-token loss on the emotion token and the response, plus the 4-way emotion cross-entropy at the
    emotion position. Returns (loss, parts): ``lm``, ``emotion_ce`` and ``emotion_accuracy`` (of the argmax
    over the four emotion tokens), batch means."""
    out = model(batch["ids"], batch["attention_mask"], batch["visual"], batch["visual_mask"], labels=batch["labels"])
    emo = torch.tensor(emotion_token_ids(vocab))
    labels = out["labels"]
    pos = (labels[:, 1:][..., None] == emo).any(-1).float().argmax(1)  # logits position predicting the emotion
    logits4 = out["logits"][torch.arange(len(pos)), pos][:, emo]
    emotion_ce = F.cross_entropy(logits4.float(), batch["emotion"])
    accuracy = (logits4.argmax(-1) == batch["emotion"]).float().mean()
    return out["loss"] + emotion_ce, {"lm": out["loss"].item(), "emotion_ce": emotion_ce.item(),
                                      "emotion_accuracy": accuracy.item()}


@torch.no_grad()
def validation_loss(model: AVLM, dialogues: list[dict], vocab, batch_size: int = 16) -> dict:
    """The dialogue loss's parts on every item of ``dialogues`` (teacher-forced, no sampling), averaged over
    items: ``val_lm`` (the reply's next-token loss), ``val_emotion_ce`` and ``val_emotion_accuracy`` (of the
    emotion position's argmax over the four emotion tokens)."""
    model.eval()
    sums = {"lm": 0.0, "emotion_ce": 0.0, "emotion_accuracy": 0.0}
    for s in range(0, len(dialogues), batch_size):
        items = dialogues[s:s + batch_size]
        _, parts = dialogue_loss(model, collate_dialogues(items, vocab), vocab)
        for k in sums:
            sums[k] += parts[k] * len(items)
    return {f"val_{k}": round(v / len(dialogues), 4) for k, v in sums.items()}


def train_dialogue(av_dir, tokens_dir, lm_dir, out, config: AVLMConfig, *, pretrain_steps: int = 150,
                   finetune_steps: int = 400, batch_size: int = 16, lr: float = 3e-4, visual_lr: float = 1e-3,
                   mask_ratio: float = 0.3, seed: int = 0, eval_every: int = 100, progress: bool = True) -> Path:
    """Masked pre-training on all train clips, then dialogue fine-tuning with class-balanced batches of
    question clips. Every ``eval_every`` fine-tuning steps and at the end, the loss on the validation
    question clips (held-out speakers; :func:`validation_loss`) is logged, and the weights of the check with
    the lowest reply loss ``val_lm`` are kept: the model is selected on validation, never on test. Without
    validation question clips, the last step is kept. At the end writes them as ``dialogue.pt`` (an AVLM
    checkpoint with ``task: dialogue``, the kept ``step`` and its validation scores); also ``config.json`` and
    an append-only ``log.jsonl``.

    Raises:
        AVLMError: no train question clips.
        ValueError: ``eval_every`` < 1.
    """
    from tqdm import tqdm

    from speechvision.avlm.lm import load_lm_checkpoint
    from speechvision.avlm.tokens import ExpressiveTokenizer

    vocab = ExpressiveTokenizer.load(tokens_dir).vocab
    clips = load_clips(av_dir, tokens_dir, "train", config.visual_encoder, config.crop_size_px)
    dialogues = load_dialogues(av_dir, tokens_dir, "train", config.visual_encoder, config.crop_size_px, clips)
    if not dialogues:
        raise AVLMError(f"{av_dir}: no train question clips")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    val = load_dialogues(av_dir, tokens_dir, "val", config.visual_encoder, config.crop_size_px)
    torch.manual_seed(seed)
    model = build_avlm(lm_dir, vocab, config)
    opt, base_lrs = make_optimizer(model, lr, visual_lr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"task": "dialogue", "avlm": asdict(config), "pretrain_steps": pretrain_steps,
                                                 "finetune_steps": finetune_steps, "batch_size": batch_size, "lr": lr,
                                                 "visual_lr": visual_lr, "mask_ratio": mask_ratio, "seed": seed,
                                                 "eval_every": eval_every, "selection": "lowest val_lm"
                                                 if val else "last step",
                                                 "av": str(Path(av_dir).resolve()), "tokens": str(Path(tokens_dir).resolve()),
                                                 "lm": str(Path(lm_dir).resolve())}, indent=2))
    by_class = [np.flatnonzero([d["emotion"] == k for d in dialogues]) for k in range(len(EMOTIONS))]
    total = pretrain_steps + finetune_steps
    gen = torch.Generator().manual_seed(seed)
    log = open(out / "log.jsonl", "a")
    lm_config = load_lm_checkpoint(lm_dir)["config"]
    best = float("inf")
    t0 = time.time()
    for step in tqdm(range(1, total + 1), desc=f"dialogue {config.fusion}", disable=not progress):
        rng = np.random.default_rng(seed * 1_000_003 + step)
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * min(1.0, step / max(1, total // 20))
        model.train()
        if step <= pretrain_steps:
            b = collate([clips[int(i)] for i in rng.integers(0, len(clips), batch_size)], vocab)
            ids, labels = mask_speech_tokens(b["ids"], b["attention_mask"], vocab, mask_ratio, gen)
            loss = model(ids, b["attention_mask"], b["visual"], b["visual_mask"], labels=labels)["loss"]
            parts = {"masked_lm": float(loss.detach())}
        else:
            idx = [int(rng.choice(by_class[k])) for k in rng.integers(0, len(EMOTIONS), batch_size)]
            loss, parts = dialogue_loss(model, collate_dialogues([dialogues[i] for i in idx], vocab), vocab)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tuned = step - pretrain_steps
        checked = tuned > 0 and (tuned % eval_every == 0 or step == total)
        scores = validation_loss(model, val, vocab, batch_size) if checked and val else {}
        if step % 50 == 0 or step == total or scores:
            log.write(json.dumps({"step": step, "phase": "pretrain" if step <= pretrain_steps else "dialogue",
                                  **{k: round(v, 4) for k, v in parts.items()}, **scores,
                                  "seconds": round(time.time() - t0, 1)}) + "\n")
            log.flush()
        if (scores and scores["val_lm"] < best) or (not val and step == total):
            best = scores.get("val_lm", best)
            kept = {"state": {k: v.detach().clone() for k, v in model.state_dict().items()}, "step": step, **scores}
    log.close()
    model.load_state_dict(kept.pop("state"))
    # written once, at the end: a killed run leaves no dialogue.pt that a recipe would take as finished
    save_avlm(out / "dialogue.pt", model.eval(), lm_config, {"task": "dialogue", **kept})
    return out


def evaluate_dialogue(model_path, av_dir, tokens_dir, vocoder_dir, speech_dir, out, *, force_emotion: bool = False,
                      limit: int | None = None, seed: int = 0, split: str = "test", temperature: float = 0.8,
                      progress: bool = True) -> dict:
    """Generate a reply to every question clip of ``split`` (the first ``limit``) and measure it; writes
    ``metrics.json``, ``replies.jsonl`` and a few wavs under ``samples/``. ``split="val"`` is for choices
    (a schedule, a decoding setting), test for the reported numbers. Replies are sampled at ``temperature``
    with top-p 0.95 and the seed ``seed`` + the clip's position.

    Metrics: recognition accuracy of the emotion token; reply emotion accuracy by the judge (a generated
    reply counts when the judge hears the target emotion; ``EmotionJudge`` raw and speaker-normalised, the
    latter with the response voice's resynthesised utterances of the split as reference), overall and on
    ambiguous-audio clips; WER of the
    replies against the reference response texts; ``content_recall``, the share of the reference reply's content
    words heard in the reply (the question's who, what, verb, when, where: does the reply answer it?), and
    ``answer_share``, the share heard as an answer ("yes ..."); DNSMOS. Reference rows give the same judge, WER and
    DNSMOS on the real reference responses and on their resynthesis (encode, decode), the ceilings a
    generated reply can reach through this vocoder; they are measured once per tokens and vocoder and
    cached (:mod:`speechvision.avlm.references`).
    """
    from tqdm import tqdm

    from speechvision.avlm.judges import (
        classification_report,
        dnsmos,
        emotion_features,
        train_judge,
        transcribe,
    )
    from speechvision.avlm.references import split_references, voice_feature_sets
    from speechvision.avlm.vocoder import UnitVocoder
    from speechvision.core.tts import write_wav_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    speaker = UnitVocoder.load(tokens_dir, vocoder_dir)
    vocab, rate = speaker.tok.vocab, speaker.tok.config.sample_rate_hz
    model = load_avlm(model_path, vocab)
    items = load_dialogues(av_dir, tokens_dir, split, model.config.visual_encoder, model.config.crop_size_px)
    items = items[:limit] if limit else items
    if not items:
        raise AVLMError(f"{av_dir}: no {split} question clips")
    judge = train_judge(speech_dir, rate, progress=progress)
    # the split's utterances, real and resynthesised, measured once per tokens + vocoder (cached): the judge's
    # per-voice references (features of all of them) and the reply ceilings (transcripts and DNSMOS of the
    # responses these items are scored against)
    refs = split_references(tokens_dir, vocoder_dir, speaker, measure_ids={it["response_id"] for it in items},
                            split=split, progress=progress)
    voice_sets = {d: voice_feature_sets(refs, d) for d in ("real", "resynth")}
    rows = []
    for n, it in enumerate(tqdm(items, desc="replies", unit="clip", disable=not progress)):
        b = collate_dialogues([it], vocab, with_response=False)
        probs = predict_emotion(model, vocab, it["question"], b["visual"], b["visual_mask"])
        target = EMOTIONS[it["emotion"]]
        emotion = target if force_emotion else EMOTIONS[int(probs.argmax())]
        toks = sample_response(model, vocab, it["question"], emotion, b["visual"], b["visual_mask"], seed=seed + n,
                               temperature=temperature)
        has_unit = any(vocab.kind(t) == "unit" for t in toks)
        wave = speaker.decode(toks, it["response_voice"]) if has_unit else np.zeros(rate // 10, np.float32)
        row = {"id": it["id"], "target": target, "predicted": EMOTIONS[int(probs.argmax())], "used": emotion,
               "ambiguous": it["ambiguous"], "reference": it["response_text"], "new_tokens": len(toks)}
        measured = {"reply": {"feats": emotion_features(wave, rate), "text": transcribe(wave, rate),
                              "dnsmos": dnsmos(wave, rate)["ovrl"] if len(wave) > rate // 2 else None},
                    **{d: refs[it["response_id"]][d] for d in ("real", "resynth")}}
        rows.append(row | judged_columns(measured, judge, voice_sets, it["response_voice"]))
        if n < 4:
            write_wav_atomic(out / "samples" / f"{it['id']}-reply-{emotion}.wav", wave, rate)
    with open(out / "replies.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)

    amb = [r for r in rows if r["ambiguous"]]
    metrics = {"model": str(Path(model_path).resolve()), "fusion": model.config.fusion,
               "visual_encoder": model.config.visual_encoder, "force_emotion": force_emotion, "seed": seed,
               "split": split, "temperature": temperature,
               "recognition": classification_report([r["target"] for r in rows], [r["predicted"] for r in rows]),
               "recognition_ambiguous": classification_report([r["target"] for r in amb], [r["predicted"] for r in amb])
               if amb else None,
               "replies": reply_metrics(rows, "reply"), "replies_ambiguous": reply_metrics(amb, "reply") if amb else None,
               "reference_real": reply_metrics(rows, "real"), "reference_resynth": reply_metrics(rows, "resynth")}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def judged_columns(measured: dict, judge, voice_sets: dict, voice: str) -> dict:
    """The ``replies.jsonl`` columns of one clip's measured replies (``measured``: kind -> {"feats", "text",
    "dnsmos"}): the judge's emotion, raw and normalised by ``voice``'s reference set (the real utterances for
    "real", the resynthesised ones otherwise), the transcript and DNSMOS."""
    cols = {}
    for name, m in measured.items():
        f = m["feats"][None]
        cols[f"{name}_judge"] = judge.predict(f)[0]
        cols[f"{name}_judge_norm"] = judge.predict(f, voice_sets["real" if name == "real" else "resynth"][voice])[0]
        cols[f"{name}_text"], cols[f"{name}_dnsmos"] = m["text"], m["dnsmos"]
    return cols


def reply_metrics(rows: list[dict], name: str) -> dict:
    """The judged measures of one kind of reply (``name``: "reply", "real" or "resynth") over ``rows`` of
    ``replies.jsonl``: emotion accuracy (raw and speaker-normalised), WER against the reference text, content
    recall, answer share and mean DNSMOS OVRL (None where no reply was long enough to score)."""
    from speechvision.avlm.judges import word_error_rate

    moses = [r[f"{name}_dnsmos"] for r in rows if r[f"{name}_dnsmos"] is not None]
    return {"emotion_accuracy": float(np.mean([r[f"{name}_judge"] == r["target"] for r in rows])),
            "emotion_accuracy_speaker_normalised": float(np.mean([r[f"{name}_judge_norm"] == r["target"]
                                                                  for r in rows])),
            "wer": word_error_rate([r["reference"] for r in rows], [r[f"{name}_text"] for r in rows]),
            "content_recall": float(np.mean([content_recall(r["reference"], r[f"{name}_text"]) for r in rows])),
            "answer_share": float(np.mean([heard_as_answer(r[f"{name}_text"]) for r in rows])),
            "dnsmos_ovrl": float(np.mean(moses)) if moses else None, "n": len(rows)}
