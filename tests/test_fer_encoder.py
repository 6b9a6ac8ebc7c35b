"""The `fer` visual encoder: frozen pretrained facial-expression CNN features of a real face photo (shape,
determinism, zero without a face, pose-robust through the aligned crop, the model reads a smile as happy),
and FEREncoder / the AVLM over (B, Tv, 256) features with masked frames zero."""

import importlib.util

import numpy as np
import pytest
import torch

from speechvision.avlm.face import FER_DIM, FER_EMOTIONS, FaceError

needs_fer = pytest.mark.skipif(importlib.util.find_spec("facial_emotion_recognition") is None,
                               reason="facial-emotion-recognition is not installed (make install, or "
                                      "pip install --no-deps facial-emotion-recognition==0.3.4)")


@pytest.fixture(scope="module")
def astronaut():
    """(frames (3, 256, 256, 3): photo, rotated + scaled photo, blank; landmarks (3, 68, 2); has_face)."""
    pytest.importorskip("dlib", reason="the avlm extra is not installed")
    data = pytest.importorskip("skimage.data")
    import cv2

    from speechvision.avlm.face import FaceAnalyzer

    photo = data.astronaut()[:256, 64:320]  # the astronaut's (smiling) face, 256 x 256
    rot = cv2.warpAffine(photo, cv2.getRotationMatrix2D((128, 128), 12, 0.9), (256, 256))
    fa = FaceAnalyzer()
    lm = [fa.landmarks(photo), fa.landmarks(rot)]
    assert all(x is not None for x in lm)
    frames = np.stack([photo, rot, np.full_like(photo, 128)])
    return frames, np.stack(lm + [lm[0]]), np.array([True, True, False])


@needs_fer
def test_fer_features_of_a_real_face(astronaut):
    from speechvision.avlm.face import FER_MARGIN, FER_SIZE_PX, face_crops, fer_features, fer_forward

    frames, lm, has = astronaut
    feats = fer_features(frames, lm, has)
    assert feats.shape == (3, FER_DIM) and feats.dtype == np.float32
    assert np.array_equal(feats, fer_features(frames, lm, has))  # deterministic
    assert (feats[2] == 0).all() and (feats[:2] >= 0).all() and (feats[:2] > 0).sum(1).min() > 20
    cos = feats[0] @ feats[1] / np.linalg.norm(feats[0]) / np.linalg.norm(feats[1])
    assert cos > 0.8  # the aligned crop removes the in-plane rotation and scale
    # the input contract is right: the pretrained classifier reads the astronaut's smile as happy
    _, scores = fer_forward(face_crops(frames[:1], lm[:1], size=FER_SIZE_PX, margin=FER_MARGIN))
    assert scores.shape == (1, 7) and FER_EMOTIONS[int(scores[0].argmax())] == "happy" and scores[0].max() > 0.9
    # non-finite landmarks count as no face; all-missing gives zeros
    lm_nan = lm.copy()
    lm_nan[0] = np.nan
    assert (fer_features(frames, lm_nan)[0] == 0).all()
    assert (fer_features(frames[2:], lm[2:], has[2:]) == 0).all()
    with pytest.raises(FaceError, match="48, 48"):
        fer_forward(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(FaceError, match=r"\(T, 68, 2\)"):
        fer_features(frames, lm[:2])


def test_fer_model_missing_says_what_to_install(monkeypatch):
    from speechvision.avlm import face

    monkeypatch.setattr(face.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceError, match="pip install --no-deps 'facial-emotion-recognition==0.3.4'"):
        face.fer_model_path()


def test_fer_encoder_shape_and_masked_frames_are_zero():
    from speechvision.avlm.visual import ENCODERS, FEREncoder, build_visual_encoder

    assert "fer" in ENCODERS and isinstance(build_visual_encoder("fer", 32), FEREncoder)
    torch.manual_seed(0)
    enc = FEREncoder(32).eval()
    x = torch.relu(torch.randn(2, 23, FER_DIM)) * 10
    mask = torch.ones(2, 23, dtype=torch.bool)
    mask[1, 11:] = False
    mask[0, 4] = False
    x[1, 11:] = 0
    out = enc(x, mask)
    assert out.shape == (2, 23, 32) and torch.isfinite(out).all()
    assert (out[1, 11:] == 0).all() and (out[0, 4] == 0).all() and (out[0, :4].abs().sum(-1) > 0).all()


def test_avlm_runs_on_collated_fer_features():
    pytest.importorskip("transformers", reason="the expressive extra is not installed")
    from speechvision.avlm.lm import SpeechLMConfig, build_lm
    from speechvision.avlm.model import AVLM, AVLMConfig, collate
    from speechvision.avlm.vocabulary import Vocabulary

    v = Vocabulary(n_units=8, n_styles=4)
    rng = np.random.default_rng(0)
    clips = [{"tokens": [v.style(0), v.pitch(2), v.unit(1), v.unit(2)], "emotion": 1,
              "visual": np.maximum(rng.normal(0, 3, (n, FER_DIM)), 0).astype(np.float32)} for n in (23, 11)]
    b = collate(clips, v)
    assert b["visual"].shape == (2, 23, FER_DIM) and b["visual"].dtype == torch.float32
    assert b["visual_mask"].sum(1).tolist() == [23, 11]
    torch.manual_seed(0)
    lm = build_lm(SpeechLMConfig(vocab_size=v.size, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                 dropout=0.0))
    m = AVLM(lm, v, AVLMConfig(fusion="perceiver", visual_encoder="fer", heads=2)).eval()
    vis = m.encode_visual(b["visual"], b["visual_mask"])
    assert vis.shape == (2, 23, 32) and (vis[1, 11:] == 0).all()
    out = m(b["ids"], b["attention_mask"], b["visual"], b["visual_mask"])
    assert out["emotion_logits"].shape == (2, 4) and torch.isfinite(out["logits"]).all()


@needs_fer
def test_load_clips_computes_fer_features_once_per_clip(tmp_path):
    import json

    from test_av_emotion import _speech_corpus

    from speechvision.avlm.data.av_emotion import AVBuildConfig, build_av_emotion
    from speechvision.avlm.train import load_clips

    rows = _speech_corpus(tmp_path / "speech", dialogues=5)
    build_av_emotion(tmp_path / "speech", tmp_path / "av", AVBuildConfig(), progress=False)
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "encoded.jsonl").write_text("".join(json.dumps({"id": r["id"], "tokens": [5, 6]}) + "\n"
                                                               for r in rows))
    fer = load_clips(tmp_path / "av", tmp_path / "tokens", "val", "fer")
    lmk = load_clips(tmp_path / "av", tmp_path / "tokens", "val", "landmark-conv")
    assert len(fer) == len(lmk) == 8
    for a, b in zip(fer, lmk):
        assert a["id"] == b["id"] and a["visual"].shape == (len(b["visual"]), FER_DIM)
        assert a["visual"].dtype == np.float32 and (a["visual"] > 0).any(1).all()  # every rendered frame has a face
