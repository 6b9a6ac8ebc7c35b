"""The synthetic audio-visual set: ambiguous clips carry neutral audio, faces carry the emotion through
any pose, the jaw follows the speech energy, the build is deterministic."""

import json

import numpy as np
import pytest
import soundfile as sf

from speechvision.avlm.data.av_emotion import (
    TEMPLATES,
    AVBuildConfig,
    build_av_emotion,
    face_sequence,
    load_av_emotion,
    render_face,
)
from speechvision.avlm.data.spoken_emotion import EMOTIONS
from speechvision.avlm.face import expression_features
from speechvision.data.manifest import DatasetError

RATE = 16000


def _speech_corpus(root, dialogues=6):
    rng = np.random.default_rng(0)
    rows = []
    for d in range(dialogues):
        split = "train" if d < 4 else ("val" if d < 5 else "test")
        for e in EMOTIONS:
            for role in ("question", "response"):
                uid = f"se-{d:04d}-{role[0]}-{e}"
                # 1 s: 0.4 s of loud noise between silences, so the energy has a known shape
                wave = np.zeros(RATE, np.float32)
                wave[4000:10400] = 0.3 * rng.standard_normal(6400)
                (root / "audio").mkdir(parents=True, exist_ok=True)
                sf.write(root / "audio" / f"{uid}.wav", wave + 1e-3 * rng.standard_normal(RATE), RATE)
                rows.append({"id": uid, "audio": f"audio/{uid}.wav", "split": split, "emotion": e, "text": "hi there",
                             "voice": f"v{d % 3}", "dialogue": d, "role": role, "prosody": {}})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "dataset.json").write_text(json.dumps({"name": "spoken-emotion", "sample_rate_hz": RATE}))
    return rows


def test_build_marks_ambiguous_clips_and_gives_them_the_neutral_recording(tmp_path):
    _speech_corpus(tmp_path / "speech")
    out = build_av_emotion(tmp_path / "speech", tmp_path / "av", AVBuildConfig(ambiguous_fraction=0.5), progress=False)
    meta, rows, faces = load_av_emotion(out)
    assert meta["synthetic"] is True and len(rows) == 48 and meta["splits"] == {"train": 32, "val": 8, "test": 8}
    amb = [r for r in rows if r["ambiguous"]]
    assert 12 <= len(amb) <= 36
    for r in rows:
        expected = f"se-{r['dialogue']:04d}-{r['role'][0]}-{'neutral' if r['ambiguous'] else r['emotion']}"
        assert r["audio_id"] == expected and r["audio_emotion"] == ("neutral" if r["ambiguous"] else r["emotion"])
        assert faces[r["id"]].shape == (r["frames"], 68, 2) == (25, 68, 2)
    again = build_av_emotion(tmp_path / "speech", tmp_path / "av2", AVBuildConfig(ambiguous_fraction=0.5),
                             progress=False)
    _, rows2, faces2 = load_av_emotion(again)
    assert rows2 == rows
    assert all(np.array_equal(faces[k], faces2[k]) for k in faces)
    _, test, test_faces = load_av_emotion(out, "test")
    assert {r["split"] for r in test} == {"test"} and set(test_faces) == {r["id"] for r in test}
    with pytest.raises(DatasetError, match="faces.safetensors: missing"):
        load_av_emotion(tmp_path / "speech")


def test_faces_carry_the_emotion_template_through_pose_and_the_jaw_follows_energy():
    rng = np.random.default_rng(1)
    energy = np.concatenate([np.zeros(20), np.ones(20), np.zeros(20)]).astype(np.float32)
    flat = {e: np.stack([TEMPLATES[k].ravel() for k in EMOTIONS]) for e in EMOTIONS}
    for e in EMOTIONS:
        lm = face_sequence(e, 1.0, energy, "voice-a", rng)
        feats = expression_features(lm)
        quiet = feats[np.r_[0:20, 40:60]].mean(0)
        neutral_quiet = expression_features(face_sequence("neutral", 1.0, energy, "voice-a", rng))[np.r_[0:20, 40:60]].mean(0)
        delta = quiet - neutral_quiet  # identity cancels; what is left is the expression
        scores = flat[e] @ delta
        if e != "neutral":
            assert EMOTIONS[int(scores.argmax())] == e, (e, scores)
        # the lower lip (point 57) drops while speaking
        assert feats[20:40, 57 * 2 + 1].mean() - feats[:20, 57 * 2 + 1].mean() > 0.1
    img = render_face(lm[0])
    assert img.shape == (96, 96) and img.dtype == np.uint8 and 200 < (img > 0).sum() < 3000
