"""Loaders for the real audio-visual emotion corpora in their published layouts (issue 8).

None of these can be had offline here (see ../shared/reference/offline.md). Each loader indexes a copy
that a user has, without decoding any media, into the same clip rows::

    {"id", "corpus", "audio": path | None, "video": path | None, "start_s", "end_s" (segment of the video,
     None = whole file), "emotion": "neutral" | "happy" | "angry" | "sad" | None (outside the 4 classes),
     "label": the corpus's own label, "speaker", "text": str | None, "split": "train" | "val" | "test"}

The four classes are the IEMOCAP test classes the AVLM paper evaluates (neutral, happy with excited
merged in, angry, sad; AVLM's test also merges frustrated into angry: ``frustrated_as_angry``). Splits
are speaker-independent and deterministic: IEMOCAP sessions 1-3 / 4 / 5; the other corpora sort their
speakers and give the first 70 % to train, the next 15 % to val and the rest to test.

Layouts (the names the corpora ship with):

- IEMOCAP: ``Session{1..5}/dialog/EmoEvaluation/<dialog>.txt`` (lines ``[6.2901 - 8.2357]\\t<turn>\\t<label>\\t[v, a, d]``),
  ``Session{n}/sentences/wav/<dialog>/<turn>.wav``, ``Session{n}/dialog/avi/DivX/<dialog>.avi`` and
  ``Session{n}/dialog/transcriptions/<dialog>.txt`` (``<turn> [start-end]: text``).
- CREMA-D: ``AudioWAV/1001_DFA_ANG_XX.wav`` (actor, sentence, emotion, intensity) and
  ``VideoFlash/<same>.flv`` (or ``VideoMP4/<same>.mp4``).
- RAVDESS: ``Actor_01/03-01-06-01-02-01-01.wav`` (modality 03 audio-only, 01 audio-video mp4, 02 video-only
  mp4; vocal channel 01 speech, 02 song; emotion; intensity; statement; repetition; actor).
- MEAD: ``M003/audio/<emotion>/level_<k>/<nnn>.m4a`` and ``M003/video/front/<emotion>/level_<k>/<nnn>.mp4``.
"""

from __future__ import annotations

import re
from pathlib import Path

from speechvision.data.manifest import DatasetError

CLASSES = ("neutral", "happy", "angry", "sad")

IEMOCAP_MAP = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}
CREMA_EMOTIONS = {"NEU": "neutral", "HAP": "happy", "ANG": "angry", "SAD": "sad", "DIS": None, "FEA": None}
CREMA_SENTENCES = {"IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
                   "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
                   "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
                   "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
                   "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
                   "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes"}
RAVDESS_EMOTIONS = {"01": ("neutral", "neutral"), "02": ("calm", None), "03": ("happy", "happy"),
                    "04": ("sad", "sad"), "05": ("angry", "angry"), "06": ("fearful", None),
                    "07": ("disgust", None), "08": ("surprised", None)}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
MEAD_MAP = {"neutral": "neutral", "happy": "happy", "angry": "angry", "sad": "sad"}


def speaker_split(speakers, train: float = 0.7, val: float = 0.15) -> dict:
    """speaker -> split: sorted speakers, the first ``train`` fraction train, the next ``val`` val, the rest test;
    with 2 or more speakers at least one is test, with 3 or more at least one is val."""
    s = sorted(set(speakers))
    n = len(s)
    n_test = n - round((train + val) * n)
    n_val = round((train + val) * n) - round(train * n)
    n_test = max(n_test, 1) if n >= 2 else n_test
    n_val = max(n_val, 1) if n >= 3 else 0
    n_train = n - n_val - n_test
    return {spk: "train" if i < n_train else ("val" if i < n_train + n_val else "test") for i, spk in enumerate(s)}


def _need_dir(path: Path, corpus: str, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: missing; expected the {corpus} {what} folder")
    return path


def _finish(rows: list[dict], four_class: bool) -> list[dict]:
    return [r for r in rows if r["emotion"] is not None or not four_class]


# --- IEMOCAP ----------------------------------------------------------------------------------------------------

_IEMOCAP_LINE = re.compile(r"^\[(\d+\.?\d*)\s*-\s*(\d+\.?\d*)\]\s+(\S+)\s+(\S+)\s+\[")
_IEMOCAP_TEXT = re.compile(r"^(\S+)\s+\[[\d.\-\s]+\]:\s*(.*)$")


def load_iemocap(root: str | Path, *, four_class: bool = True, frustrated_as_angry: bool = False,
                 val_session: int = 4, test_session: int = 5) -> list[dict]:
    """Utterance-level clips of IEMOCAP (``root`` holds ``Session1`` .. ``Session5``).

    Raises:
        DatasetError: no session folder, or an evaluated turn whose WAV is missing (named).
    """
    root = Path(root)
    if (root / "IEMOCAP_full_release").is_dir():
        root = root / "IEMOCAP_full_release"
    sessions = sorted(p for p in _need_dir(root, "IEMOCAP", "release").glob("Session[1-5]") if p.is_dir())
    if not sessions:
        raise DatasetError(f"{root}: no Session1..Session5 folders; is this the IEMOCAP release?")
    mapping = dict(IEMOCAP_MAP, **({"fru": "angry"} if frustrated_as_angry else {}))
    rows = []
    for sess in sessions:
        n = int(sess.name[-1])
        split = "test" if n == test_session else ("val" if n == val_session else "train")
        evals = sorted(_need_dir(sess / "dialog" / "EmoEvaluation", "IEMOCAP", "EmoEvaluation").glob("*.txt"))
        for ev in evals:
            dialog = ev.stem
            texts = {}
            tr = sess / "dialog" / "transcriptions" / f"{dialog}.txt"
            if tr.is_file():
                for line in tr.read_text(errors="replace").splitlines():
                    m = _IEMOCAP_TEXT.match(line.strip())
                    if m:
                        texts[m.group(1)] = m.group(2)
            video = sess / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
            for line in ev.read_text(errors="replace").splitlines():
                m = _IEMOCAP_LINE.match(line.strip())
                if not m:
                    continue
                start, end, turn, label = float(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
                wav = sess / "sentences" / "wav" / dialog / f"{turn}.wav"
                if not wav.is_file():
                    raise DatasetError(f"{wav}: missing (turn {turn} of {ev})")
                gender = turn.rsplit("_", 1)[-1][0]
                rows.append({"id": turn, "corpus": "iemocap", "audio": str(wav),
                             "video": str(video) if video.is_file() else None, "start_s": start, "end_s": end,
                             "emotion": mapping.get(label), "label": label, "speaker": f"{turn[:5]}{gender}",
                             "text": texts.get(turn), "split": split, "dialogue": dialog})
    return _finish(rows, four_class)


# --- CREMA-D ----------------------------------------------------------------------------------------------------

_CREMA = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def load_crema_d(root: str | Path, *, four_class: bool = True) -> list[dict]:
    """Clips of CREMA-D (``root`` holds ``AudioWAV`` and optionally ``VideoFlash`` / ``VideoMP4``).

    Raises:
        DatasetError: no ``AudioWAV`` folder, or a file name outside the ``1001_DFA_ANG_XX`` pattern (named).
    """
    root = Path(root)
    wavs = sorted(_need_dir(root / "AudioWAV", "CREMA-D", "AudioWAV").glob("*.wav"))
    rows = []
    for wav in wavs:
        m = _CREMA.match(wav.stem)
        if not m or m.group(3) not in CREMA_EMOTIONS or m.group(2) not in CREMA_SENTENCES:
            raise DatasetError(f"{wav}: not a CREMA-D name (actor_sentence_emotion_intensity, e.g. 1001_DFA_ANG_XX)")
        actor, sentence, emo, _ = m.groups()
        video = next((p for p in (root / "VideoFlash" / f"{wav.stem}.flv", root / "VideoMP4" / f"{wav.stem}.mp4")
                      if p.is_file()), None)
        rows.append({"id": wav.stem, "corpus": "crema-d", "audio": str(wav), "video": str(video) if video else None,
                     "start_s": None, "end_s": None, "emotion": CREMA_EMOTIONS[emo], "label": emo,
                     "speaker": actor, "text": CREMA_SENTENCES[sentence]})
    split = speaker_split(r["speaker"] for r in rows)
    for r in rows:
        r["split"] = split[r["speaker"]]
    return _finish(rows, four_class)


# --- RAVDESS ----------------------------------------------------------------------------------------------------

_RAVDESS = re.compile(r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})$")


def load_ravdess(root: str | Path, *, four_class: bool = True, include_song: bool = False) -> list[dict]:
    """Clips of RAVDESS (``root`` holds ``Actor_01`` .. ``Actor_24``), one per recording: its audio-only WAV
    (modality 03) and its video (the audio-video mp4, modality 01, else the video-only one, 02).

    Raises:
        DatasetError: no ``Actor_*`` folder, or a media file outside the 7-field naming (named).
    """
    root = Path(root)
    actors = sorted(p for p in _need_dir(root, "RAVDESS", "release").glob("Actor_*") if p.is_dir())
    if not actors:
        raise DatasetError(f"{root}: no Actor_01..Actor_24 folders; is this the RAVDESS release?")
    clips: dict = {}
    for actor in actors:
        for f in sorted(actor.iterdir()):
            if f.suffix.lower() not in (".wav", ".mp4"):
                continue
            m = _RAVDESS.match(f.stem)
            if not m:
                raise DatasetError(f"{f}: not a RAVDESS name (7 two-digit fields, e.g. 03-01-06-01-02-01-12)")
            modality, channel, emo, intensity, statement, rep, actor_id = m.groups()
            if channel == "02" and not include_song:
                continue
            key = "-".join((channel, emo, intensity, statement, rep, actor_id))
            c = clips.setdefault(key, {"audio": None, "video": {}, "fields": m.groups()})
            if modality == "03":
                c["audio"] = str(f)
            else:
                c["video"][modality] = str(f)
    rows = []
    for key, c in sorted(clips.items()):
        _, channel, emo, intensity, statement, rep, actor_id = c["fields"]
        label, emotion = RAVDESS_EMOTIONS[emo]
        video = c["video"].get("01") or c["video"].get("02")
        rows.append({"id": f"ravdess-{key}", "corpus": "ravdess", "audio": c["audio"], "video": video,
                     "start_s": None, "end_s": None, "emotion": emotion, "label": label,
                     "intensity": "strong" if intensity == "02" else "normal", "speaker": f"Actor_{actor_id}",
                     "text": RAVDESS_STATEMENTS[statement], "song": channel == "02"})
    split = speaker_split(r["speaker"] for r in rows)
    for r in rows:
        r["split"] = split[r["speaker"]]
    return _finish(rows, four_class)


# --- MEAD -------------------------------------------------------------------------------------------------------

def load_mead(root: str | Path, *, four_class: bool = True, view: str = "front") -> list[dict]:
    """Clips of MEAD (``root`` holds speaker folders such as ``M003`` and ``W009``), audio ``.m4a`` with the
    ``view`` camera's ``.mp4`` when present.

    Raises:
        DatasetError: no speaker folder with an ``audio`` folder.
    """
    root = Path(root)
    speakers = sorted(p for p in _need_dir(root, "MEAD", "release").iterdir()
                      if p.is_dir() and re.fullmatch(r"[MW]\d{3}", p.name) and (p / "audio").is_dir())
    if not speakers:
        raise DatasetError(f"{root}: no speaker folders like M003/audio; is this the MEAD release?")
    rows = []
    for spk in speakers:
        for audio in sorted((spk / "audio").glob("*/level_*/*.m4a")):
            emotion_dir, level = audio.parent.parent.name, audio.parent.name
            video = spk / "video" / view / emotion_dir / level / f"{audio.stem}.mp4"
            rows.append({"id": f"{spk.name}-{emotion_dir}-{level}-{audio.stem}", "corpus": "mead",
                         "audio": str(audio), "video": str(video) if video.is_file() else None,
                         "start_s": None, "end_s": None, "emotion": MEAD_MAP.get(emotion_dir),
                         "label": emotion_dir, "intensity": level, "speaker": spk.name, "text": None})
    split = speaker_split(r["speaker"] for r in rows)
    for r in rows:
        r["split"] = split[r["speaker"]]
    return _finish(rows, four_class)


LOADERS = {"iemocap": load_iemocap, "crema-d": load_crema_d, "ravdess": load_ravdess, "mead": load_mead}


def load_emotion_corpus(name: str, root: str | Path, **kw) -> list[dict]:
    """Dispatch by corpus name (``iemocap``, ``crema-d``, ``ravdess``, ``mead``).

    Raises:
        DatasetError: an unknown corpus name.
    """
    if name not in LOADERS:
        raise DatasetError(f"unknown emotion corpus {name!r}; choose one of {', '.join(LOADERS)}")
    return LOADERS[name](root, **kw)
