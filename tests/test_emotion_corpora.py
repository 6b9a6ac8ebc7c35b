"""Loaders of IEMOCAP, CREMA-D, RAVDESS and MEAD on fixture trees with the corpora's real names.

The loaders index files without decoding media, so the fixture WAVs are real (tiny) PCM files and the
video/m4a files are empty placeholders with the real names.
"""

import numpy as np
import pytest
import soundfile as sf

from speechvision.avlm.data.emotion_corpora import (
    load_crema_d,
    load_emotion_corpus,
    load_iemocap,
    load_mead,
    load_ravdess,
    speaker_split,
)
from speechvision.data.manifest import DatasetError


def _wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, np.float32), 16000)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_speaker_split_is_deterministic_and_disjoint():
    s = speaker_split([f"{i:04d}" for i in range(1001, 1021)] * 3)
    assert sum(v == "train" for v in s.values()) == 14 and sum(v == "test" for v in s.values()) == 3
    assert s == speaker_split(reversed(list(s)))
    assert list(speaker_split(["a", "b", "c"]).values()) == ["train", "val", "test"]  # small sets keep a test speaker
    assert list(speaker_split(["a", "b"]).values()) == ["train", "test"]


def test_iemocap(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    turns = {1: [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "exc"), ("Ses01F_impro01_F001", "fru"),
                 ("Ses01F_impro01_M001", "xxx")],
             4: [("Ses04M_script01_1_F000", "sad")], 5: [("Ses05F_impro03_M002", "ang")]}
    for n, ts in turns.items():
        dialog = ts[0][0].rsplit("_", 1)[0]
        sess = root / f"Session{n}"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        text = []
        for k, (turn, label) in enumerate(ts):
            lines += [f"[{k * 3 + 1.5:.4f} - {k * 3 + 3.25:.4f}]\t{turn}\t{label}\t[2.5000, 2.5000, 2.5000]",
                      "C-E2:\tNeutral;\t()", ""]
            text.append(f"{turn} [{k * 3 + 1.5:08.4f}-{k * 3 + 3.25:08.4f}]: Hello number {k}.")
            _wav(sess / "sentences" / "wav" / dialog / f"{turn}.wav")
        (sess / "dialog" / "EmoEvaluation").mkdir(parents=True)
        (sess / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(lines))
        (sess / "dialog" / "transcriptions").mkdir(parents=True)
        (sess / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(text))
        _touch(sess / "dialog" / "avi" / "DivX" / f"{dialog}.avi")
    rows = {r["id"]: r for r in load_iemocap(tmp_path)}  # the parent of IEMOCAP_full_release works too
    assert set(rows) == {"Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses04M_script01_1_F000", "Ses05F_impro03_M002"}
    assert rows["Ses01F_impro01_M000"]["emotion"] == "happy"  # excited merged into happy
    assert rows["Ses01F_impro01_M000"]["speaker"] == "Ses01M" and rows["Ses01F_impro01_F000"]["speaker"] == "Ses01F"
    assert [rows[k]["split"] for k in ("Ses01F_impro01_F000", "Ses04M_script01_1_F000", "Ses05F_impro03_M002")] == \
        ["train", "val", "test"]
    r = rows["Ses01F_impro01_M000"]
    assert (r["start_s"], r["end_s"]) == (4.5, 6.25) and r["text"] == "Hello number 1."
    assert r["video"].endswith("Session1/dialog/avi/DivX/Ses01F_impro01.avi")
    angry = {r["id"] for r in load_iemocap(root, frustrated_as_angry=True) if r["emotion"] == "angry"}
    assert angry == {"Ses01F_impro01_F001", "Ses05F_impro03_M002"}
    assert len(load_iemocap(root, four_class=False)) == 6
    (root / "Session5" / "sentences" / "wav" / "Ses05F_impro03" / "Ses05F_impro03_M002.wav").unlink()
    with pytest.raises(DatasetError, match="Ses05F_impro03_M002.wav: missing"):
        load_iemocap(root)


def test_crema_d(tmp_path):
    names = [f"{a}_{s}_{e}_XX" for a in range(1001, 1011) for s, e in (("DFA", "ANG"), ("IEO", "HAP"), ("TIE", "DIS"))]
    for n in names:
        _wav(tmp_path / "AudioWAV" / f"{n}.wav")
    _touch(tmp_path / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    rows = load_crema_d(tmp_path)
    assert len(rows) == 20 and {r["emotion"] for r in rows} == {"angry", "happy"}
    r = next(r for r in rows if r["id"] == "1001_DFA_ANG_XX")
    assert r["video"].endswith("1001_DFA_ANG_XX.flv") and r["text"] == "Don't forget a jacket" and r["speaker"] == "1001"
    by_split = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert by_split["train"] == {str(a) for a in range(1001, 1008)} and not by_split["train"] & by_split["test"]
    assert len(load_crema_d(tmp_path, four_class=False)) == 30
    _wav(tmp_path / "AudioWAV" / "1001_DFA_BOR_XX.wav")
    with pytest.raises(DatasetError, match="1001_DFA_BOR_XX.wav: not a CREMA-D name"):
        load_crema_d(tmp_path)
    with pytest.raises(DatasetError, match="AudioWAV: missing"):
        load_crema_d(tmp_path / "nowhere")


def test_ravdess(tmp_path):
    for actor in (1, 2, 24):
        d = tmp_path / f"Actor_{actor:02d}"
        for emo in ("01", "03", "05", "06"):
            _wav(d / f"03-01-{emo}-01-02-01-{actor:02d}.wav")
            _touch(d / f"01-01-{emo}-01-02-01-{actor:02d}.mp4")
            _touch(d / f"02-01-{emo}-01-02-01-{actor:02d}.mp4")
        _wav(d / f"03-02-03-02-01-01-{actor:02d}.wav")  # a song
    rows = load_ravdess(tmp_path)
    assert len(rows) == 9 and {r["emotion"] for r in rows} == {"neutral", "happy", "angry"}
    r = next(r for r in rows if r["speaker"] == "Actor_24" and r["emotion"] == "angry")
    assert r["audio"].endswith("03-01-05-01-02-01-24.wav") and r["video"].endswith("01-01-05-01-02-01-24.mp4")
    assert r["text"] == "Dogs are sitting by the door" and r["split"] == "test"
    assert len(load_ravdess(tmp_path, include_song=True)) == 12
    assert {r["label"] for r in load_ravdess(tmp_path, four_class=False)} == {"neutral", "happy", "angry", "fearful"}
    _touch(tmp_path / "Actor_01" / "03-01-09-01-02-01-01.wav")
    with pytest.raises(DatasetError, match="03-01-09-01-02-01-01.wav: not a RAVDESS name"):
        load_ravdess(tmp_path)


def test_mead(tmp_path):
    for spk in ("M003", "M005", "W009", "W011"):
        for emo, level in (("neutral", 1), ("angry", 3), ("contempt", 2)):
            _touch(tmp_path / spk / "audio" / emo / f"level_{level}" / "001.m4a")
            _touch(tmp_path / spk / "video" / "front" / emo / f"level_{level}" / "001.mp4")
    rows = load_mead(tmp_path)
    assert len(rows) == 8 and {r["emotion"] for r in rows} == {"neutral", "angry"}
    r = next(r for r in rows if r["id"] == "W009-angry-level_3-001")
    assert r["video"].endswith("W009/video/front/angry/level_3/001.mp4") and r["intensity"] == "level_3"
    assert [r["split"] for r in rows if r["emotion"] == "angry"] == ["train", "train", "val", "test"]
    assert len(load_emotion_corpus("mead", tmp_path, four_class=False)) == 12
    with pytest.raises(DatasetError, match="unknown emotion corpus"):
        load_emotion_corpus("savee", tmp_path)
