"""`speechvision data spoken-emotion`: a SYNTHETIC expressive-speech corpus of the four IEMOCAP test classes.

IEMOCAP, CREMA-D, RAVDESS and MEAD cannot be had offline here, so this corpus stands in for them. It is
synthetic speech, and its "emotions" are prosody profiles, not acted emotion: every sentence is spoken by
an offline voice (Piper or espeak-ng) and then given an emotion-specific pitch level, pitch range,
speaking rate and loudness, each drawn with random variation, so prosody is an informative but noisy cue
and the words carry none (the same sentence is spoken in every emotion).

Layout of the folder::

    dataset.json          {"name": "spoken-emotion", "emotions": [...], "profiles": {...}, "voices": [...],
                           "heldout_voices": [...], "sample_rate_hz": 16000, "splits": {...}, "build": {...}}
    manifest.jsonl        one JSON object per utterance:
                          {"id", "audio", "split", "emotion", "text", "voice", "dialogue", "role",
                           "prosody": {"pitch_shift_st", "pitch_range", "rate", "gain_db"}}
    audio/<id>.wav        16 kHz mono PCM16

Dialogues are question/response pairs from a small grammar (``role`` is "question" or "response"), so
the AVLM dialogue task (issue 8) can use the same corpus. Splits are by dialogue (70/15/15) and the test
split is spoken only by held-out voices.

Two grammars (``EmotionBuildConfig.grammar``):

- ``answering`` (the default since issue 20): the reply answers the question and reuses its content words,
  as a real answer would, so it follows from the question: "Did your brother sell the car last night?" ->
  "Yes, my brother sold the car last night." (person, verb, object, time and place carried over; "your" and
  "my" swapped; "you" answered with "I"). Every reply is a function of its question, so reply WER measures
  something a model can learn. Replies are affirmative: a "no" would be a coin flip no model could hear.
- ``v1``: the grammar before issue 20, whose replies do not follow from their questions ("Why did my
  sister go home after the meeting?" -> "Because my sister had to sell the photos."). Kept so that the
  corpora of docs written before it can be rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from speechvision.core.atomic import atomic_write_text
from speechvision.core.errors import SpeechvisionError
from speechvision.core.tts import (
    HELDOUT_VOICES,
    TRAIN_VOICES,
    Voice,
    espeak_available,
    synthesize,
    write_wav_atomic,
)

EMOTIONS = ("neutral", "happy", "angry", "sad")
SAMPLE_RATE_HZ = 16000
FORMAT_VERSION = 1


class EmotionCorpusError(SpeechvisionError, ValueError):
    """The corpus folder is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class ProsodyProfile:
    """Mean prosody of an emotion relative to the voice's own, and the spread of the random draw.

    Source: the direction of each cue follows the acoustic-correlates literature summarised for IEMOCAP
    (happy and angry: higher and wider pitch, faster, louder; sad: lower, narrower, slower, softer).
    """

    pitch_shift_st: float  # semitones
    pitch_range: float  # factor on the deviation of log-F0 from its utterance mean
    rate: float  # factor on speaking rate
    gain_db: float
    spread: float = 1.0  # scale of the random variation (see draw)

    def draw(self, rng: random.Random) -> dict:
        """One utterance's prosody: the profile plus Gaussian variation (st 1.5, range 0.2, rate 0.08, 2 dB)."""
        s = self.spread
        return {"pitch_shift_st": round(self.pitch_shift_st + rng.gauss(0, 1.5 * s), 3),
                "pitch_range": round(max(0.3, self.pitch_range + rng.gauss(0, 0.2 * s)), 3),
                "rate": round(max(0.6, self.rate + rng.gauss(0, 0.08 * s)), 3),
                "gain_db": round(self.gain_db + rng.gauss(0, 2.0 * s), 3)}


PROFILES: dict[str, ProsodyProfile] = {
    "neutral": ProsodyProfile(0.0, 0.8, 1.0, 0.0),
    "happy": ProsodyProfile(3.0, 1.6, 1.1, 2.0),
    "angry": ProsodyProfile(1.5, 1.3, 1.18, 5.0),
    "sad": ProsodyProfile(-2.5, 0.5, 0.82, -5.0),
}

# --- the dialogue grammar ---------------------------------------------------------------------------------
_PEOPLE = ["your brother", "my sister", "the manager", "our neighbour", "the teacher", "Sam", "Maria",
           "the doctor", "your friend", "the driver", "my father", "the new girl"]
_THINGS = ["the letter", "the car", "the keys", "the tickets", "the money", "the report", "the dog",
           "the photos", "the house", "the package", "the phone", "the dinner"]
_VERBS = [("take", "took"), ("find", "found"), ("sell", "sold"), ("bring", "brought"), ("lose", "lost"),
          ("check", "checked"), ("move", "moved"), ("open", "opened"), ("see", "saw"), ("fix", "fixed")]
_TIMES = ["this morning", "last night", "yesterday", "on Monday", "before lunch", "after the meeting",
          "an hour ago", "at the weekend"]
_PLACES = ["to the station", "to the office", "to the market", "home", "to the hospital", "to the beach",
           "to the old house", "to the airport"]


def _dialogue(rng: random.Random) -> tuple[str, str]:
    """One question/response pair (emotionally neutral words, so only prosody tells the emotion)."""
    p, t, (v, vp), tm, pl = (rng.choice(_PEOPLE), rng.choice(_THINGS), rng.choice(_VERBS), rng.choice(_TIMES),
                             rng.choice(_PLACES))
    kind = rng.randrange(4)
    if kind == 0:
        return f"Did {p} {v} {t} {tm}?", f"Yes, {p} {vp} {t} {rng.choice(_TIMES)}."
    if kind == 1:
        return f"Why did {p} go {pl} {tm}?", f"Because {p} had to {v} {t}."
    if kind == 2:
        return f"Where is {t} now?", f"I think {p} {vp} it {tm}."
    return f"Are we going {pl} {tm}?", f"No, we are going {rng.choice(_PLACES)} {rng.choice(_TIMES)}."


# --- the answering grammar (issue 20) ---------------------------------------------------------------------
# (as asked, as answered): the answerer speaks of the same person from the other side
_ASKED_PEOPLE = [("you", "I"), ("your brother", "my brother"), ("your sister", "my sister"),
                 ("your friend", "my friend"), ("your mother", "my mother"), ("my father", "your father"),
                 ("my cousin", "your cousin"), ("the manager", "the manager"), ("the teacher", "the teacher"),
                 ("the doctor", "the doctor"), ("the driver", "the driver"), ("our neighbour", "our neighbour"),
                 ("Sam", "Sam"), ("Maria", "Maria"), ("Peter", "Peter"), ("Anna", "Anna")]
_OBJECTS = ["the letter", "the keys", "the tickets", "the report", "the photos", "the package", "the phone",
            "the boxes", "the bike", "the books", "the flowers", "the computer", "the bags", "the umbrella",
            "the camera", "the car", "the dog", "the papers"]
# (base, past, past participle); verbs that go with every object above
_VERB_FORMS = [("take", "took", "taken"), ("find", "found", "found"), ("sell", "sold", "sold"),
               ("bring", "brought", "brought"), ("lose", "lost", "lost"), ("check", "checked", "checked"),
               ("move", "moved", "moved"), ("see", "saw", "seen"), ("buy", "bought", "bought"),
               ("keep", "kept", "kept"), ("leave", "left", "left"), ("need", "needed", "needed")]
_WHEN = _TIMES + ["this evening", "on Friday", "last week", "after school"]
_WHERE = _PLACES + ["to the park", "to the bank", "to the library", "to the city"]
_FUTURE = ["tomorrow", "tonight", "on Saturday", "next week", "after lunch", "this afternoon"]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _answering_dialogue(rng: random.Random) -> tuple[str, str]:
    """One question and the reply that answers it with the question's own content words."""
    (pq, pa), t, (v, vp, vpp) = rng.choice(_ASKED_PEOPLE), rng.choice(_OBJECTS), rng.choice(_VERB_FORMS)
    kind = rng.randrange(7)
    if kind == 0:
        tm = rng.choice(_WHEN)
        return f"Did {pq} {v} {t} {tm}?", f"Yes, {pa} {vp} {t} {tm}."
    if kind == 1:
        pl, tm = rng.choice(_WHERE), rng.choice(_WHEN)
        return f"Did {pq} go {pl} {tm}?", f"Yes, {pa} went {pl} {tm}."
    if kind == 2:
        tm = rng.choice(_FUTURE)
        return f"Will {pq} {v} {t} {tm}?", f"Yes, {pa} will {v} {t} {tm}."
    if kind == 3:
        aux_q, aux_a = ("Have", "have") if pq == "you" else ("Has", "has")
        return f"{aux_q} {pq} {vpp} {t} yet?", f"Yes, {pa} {aux_a} already {vpp} {t}."
    if kind == 4:
        pl, tm = rng.choice(_WHERE), rng.choice(_FUTURE)
        return f"Are we going {pl} {tm}?", f"Yes, we are going {pl} {tm}."
    if kind == 5:
        return f"Why did {pq} {v} {t}?", f"{_cap(pa)} had to {v} {t}."
    tm = rng.choice(_FUTURE)
    return f"Can {pq} {v} {t} {tm}?", f"Yes, {pa} can {v} {t} {tm}."


GRAMMARS = {"answering": _answering_dialogue, "v1": _dialogue}

# the words every answering dialogue shares (auxiliaries, articles, pronouns, time and place glue), so that what
# is left of a sentence is what it is about: who, what, which verb, when and where
FUNCTION_WORDS = frozenset({"did", "will", "can", "has", "have", "are", "why", "yet", "yes", "already", "had", "to",
                            "we", "go", "went", "going", "the", "a", "on", "at", "after", "before", "this", "last",
                            "next", "you", "i", "your", "my", "our", "is"})
_BASE_FORM = {f: base for base, *rest in _VERB_FORMS for f in (base, *rest)}


def content_words(text: str) -> set[str]:
    """The content words of a sentence of the answering grammar: lower-cased words without punctuation, minus
    ``FUNCTION_WORDS``, with every verb form mapped to its base ("sold" -> "sell")."""
    words = {w.strip("?.,!").lower() for w in text.split()}
    return {_BASE_FORM.get(w, w) for w in words - FUNCTION_WORDS if w}


def content_recall(reference: str, heard: str) -> float:
    """Share of ``reference``'s :func:`content_words` that are in ``heard`` (1.0 when it has none): how much
    of a reference reply a transcribed reply carries."""
    want = content_words(reference)
    return len(want & content_words(heard)) / len(want) if want else 1.0


def heard_as_answer(heard: str) -> bool:
    """Whether a transcribed reply is heard as an answer: it starts with "yes" (the answering grammar's replies
    are affirmative; 6 of its 7 kinds of answer start so)."""
    return heard.strip().lower().startswith("yes")


@dataclass
class EmotionBuildConfig:
    dialogues: int = 800
    seed: int = 0
    grammar: str = "answering"  # see GRAMMARS and the module docstring
    workers: int | None = None
    train_voices: tuple[str, ...] = tuple(v.id for v in TRAIN_VOICES)
    heldout_voices: tuple[str, ...] = tuple(v.id for v in HELDOUT_VOICES)


def split_of(index: int, n: int) -> str:
    """Dialogue ``index`` of ``n``: the first 70% train, the next 15% val, the rest test."""
    if index < round(0.7 * n):
        return "train"
    return "val" if index < round(0.85 * n) else "test"


def apply_prosody(wave: np.ndarray, sample_rate_hz: int, prosody: dict) -> np.ndarray:
    """Pitch level and range by WORLD analysis/synthesis (pyworld), then gain.

    Args:
        wave: (N,) float waveform.
        prosody: ``pitch_shift_st`` (semitones), ``pitch_range`` (factor on log-F0 deviations from the
            utterance's mean), ``gain_db``.
    Returns:
        (N',) float32 waveform, peak-limited to 0.99.
    """
    import pyworld

    x = wave.astype(np.float64)
    f0, t = pyworld.dio(x, sample_rate_hz, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, sample_rate_hz)
    sp = pyworld.cheaptrick(x, f0, t, sample_rate_hz)
    ap = pyworld.d4c(x, f0, t, sample_rate_hz)
    voiced = f0 > 0
    if voiced.any():
        lf = np.log(f0[voiced])
        mu = lf.mean()
        f0 = f0.copy()
        f0[voiced] = np.exp(mu + prosody["pitch_range"] * (lf - mu) + prosody["pitch_shift_st"] / 12 * np.log(2))
    y = pyworld.synthesize(f0, sp, ap, sample_rate_hz, frame_period=5.0)
    y *= 10 ** (prosody["gain_db"] / 20)
    peak = np.abs(y).max()
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def _voice_at_rate(voice: Voice, rate: float) -> Voice:
    p = dict(voice.params)
    if voice.engine == "piper":
        p["length_scale"] = float(p.get("length_scale", 1.0)) / rate
    else:
        p["speed_wpm"] = int(round(float(p.get("speed_wpm", 175)) * rate))
    return Voice(voice.id, voice.engine, voice.name, p)


def render(job: dict) -> str:
    """Synthesise one utterance (text, voice, prosody) to a 16 kHz WAV; skip when the file exists (unless
    ``job["overwrite"]``)."""
    import librosa

    from speechvision.core.tts import ALL_VOICES

    out = Path(job["out"])
    if out.is_file() and not job.get("overwrite"):
        return job["out"]
    wave, rate = synthesize(job["text"], _voice_at_rate(ALL_VOICES[job["voice"]], job["prosody"]["rate"]))
    wave = librosa.resample(wave.astype(np.float32), orig_sr=rate, target_sr=SAMPLE_RATE_HZ)
    write_wav_atomic(out, apply_prosody(wave, SAMPLE_RATE_HZ, job["prosody"]), SAMPLE_RATE_HZ)
    return job["out"]


def _render_chunk(jobs: list[dict]) -> int:
    for j in jobs:
        render(j)
    return len(jobs)


def check_grammar(grammar: str) -> None:
    """Raises EmotionCorpusError for a grammar name outside ``GRAMMARS``."""
    if grammar not in GRAMMARS:
        raise EmotionCorpusError(f"unknown grammar {grammar!r}; choose one of {', '.join(GRAMMARS)}")


def plan(config: EmotionBuildConfig) -> list[dict]:
    """Every utterance of the corpus, deterministic in ``config.seed``: dialogue x role x emotion."""
    check_grammar(config.grammar)
    make = GRAMMARS[config.grammar]
    rng = random.Random(config.seed)
    seen, pairs = set(), []
    while len(pairs) < config.dialogues:
        pair = make(rng)
        if pair[0] not in seen:
            seen.add(pair[0])
            pairs.append(pair)
    rows = []
    for d, (question, response) in enumerate(pairs):
        split = split_of(d, config.dialogues)
        pool = config.heldout_voices if split == "test" else config.train_voices
        for emotion in EMOTIONS:
            voices = rng.sample(list(pool), 2)  # question and response by different speakers
            for role, text, voice in (("question", question, voices[0]), ("response", response, voices[1])):
                uid = f"se-{d:04d}-{role[0]}-{emotion}"
                rows.append({"id": uid, "audio": f"audio/{uid}.wav", "split": split, "emotion": emotion,
                             "text": text, "voice": voice, "dialogue": d, "role": role,
                             "prosody": PROFILES[emotion].draw(rng)})
    return rows


def build_spoken_emotion(out: str | Path, config: EmotionBuildConfig = EmotionBuildConfig(), *,
                         progress: bool = True, force: bool = False) -> Path:
    """Build (or finish building: a rerun of the same options keeps the WAVs written) the corpus in ``out``;
    ``force`` is needed to build over another corpus or build (see
    :func:`~speechvision.data.spoken_fashion.begin_build`).

    Raises:
        EmotionCorpusError: a voice is unknown, espeak-ng voices are asked for without espeak-ng, or a count
            below 1.
        DatasetError: ``out`` is a file, or holds another corpus or build (without ``force``).
    """
    from speechvision.data.spoken_fashion import begin_build
    from tqdm import tqdm

    from speechvision.core.tts import ALL_VOICES

    out = Path(out)
    for v in config.train_voices + config.heldout_voices:
        if v not in ALL_VOICES:
            raise EmotionCorpusError(f"unknown voice '{v}' (see `speechvision voices`)")
        if ALL_VOICES[v].engine == "espeak" and not espeak_available():
            raise EmotionCorpusError(f"voice '{v}' needs espeak-ng: sudo apt-get install -y espeak-ng")
    for name, value in (("--dialogues", config.dialogues), ("--workers", config.workers or 1)):
        if value < 1:
            raise EmotionCorpusError(f"{name} {value}: give 1 or more")
    check_grammar(config.grammar)
    key = {"dataset": "spoken-emotion", "dialogues": config.dialogues, "seed": config.seed,
           "train_voices": config.train_voices, "heldout_voices": config.heldout_voices}
    if config.grammar != "v1":
        key["grammar"] = config.grammar  # v1 builds keep the key they were made with, so they still resume
    keep = begin_build(out, key,
                       force=force, kind="spoken-emotion corpus")
    rows = plan(config)
    jobs = [{"text": r["text"], "voice": r["voice"], "prosody": r["prosody"], "out": str(out / r["audio"]),
             "overwrite": not keep} for r in rows if not (keep and (out / r["audio"]).is_file())]
    jobs.sort(key=lambda j: (ALL_VOICES[j["voice"]].engine != "piper", j["out"]))
    chunks = [jobs[i:i + 16] for i in range(0, len(jobs), 16)]
    bar = tqdm(total=len(jobs), desc="spoken-emotion", unit="utt", disable=not progress)
    workers = config.workers or os.cpu_count() or 1
    if workers == 1 or len(chunks) <= 1:
        for c in chunks:
            bar.update(_render_chunk(c))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for n in pool.map(_render_chunk, chunks):
                bar.update(n)
    bar.close()
    meta = {"name": "spoken-emotion", "format_version": FORMAT_VERSION, "synthetic": True,
            "emotions": list(EMOTIONS), "profiles": {k: asdict(v) for k, v in PROFILES.items()},
            "voices": list(config.train_voices), "heldout_voices": list(config.heldout_voices),
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "splits": {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")},
            "build": {"dialogues": config.dialogues, "seed": config.seed, "grammar": config.grammar,
                      "plan_sha1": hashlib.sha1(json.dumps(rows).encode()).hexdigest()}}
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=2))
    return out


def load_corpus(root: str | Path, split: str | None = None) -> tuple[dict, list[dict]]:
    """(dataset.json, utterance rows) of a built corpus, optionally one split.

    Raises:
        EmotionCorpusError: the folder is not a built spoken-emotion corpus or an audio file is missing.
    """
    root = Path(root)
    for name in ("dataset.json", "manifest.jsonl"):
        if not (root / name).is_file():
            raise EmotionCorpusError(f"{root / name}: missing; build the corpus with "
                                     f"`speechvision data spoken-emotion --out {root}`")
    meta = json.loads((root / "dataset.json").read_text())
    if meta.get("name") != "spoken-emotion":
        raise EmotionCorpusError(f"{root / 'dataset.json'}: not a spoken-emotion corpus ({meta.get('name')!r})")
    rows = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines() if x.strip()]
    if split is not None:
        rows = [r for r in rows if r["split"] == split]
    for r in rows:
        if not (root / r["audio"]).is_file():
            raise EmotionCorpusError(f"{root / r['audio']}: missing audio file; rerun the build to finish it")
    return meta, rows
