"""The measuring instruments of the expressive-speech and dialogue evaluations: offline Whisper ASR and WER,
DNSMOS, F0 statistics, and the eGeMAPS emotion judge (raw and speaker-normalised)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from speechvision.avlm.tokens import f0_track
from speechvision.core.asr import transcribe  # noqa: F401  (the judges' ASR, imported from here)


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (jiwer) after lower-casing and removing punctuation."""
    import jiwer

    return float(jiwer.wer([normalise_text(r) for r in references], [normalise_text(h) or "<empty>" for h in hypotheses]))


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

    from speechvision.avlm.corpus import read_wave
    from speechvision.avlm.data.spoken_emotion import load_corpus
    from speechvision.data.cache import cached_array

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
