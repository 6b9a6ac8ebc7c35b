"""The AVLM stack as a bundle (issue 20): real-face clips animated by landmarks, the audio track of a video,
export with its size budget, loading, and the demo end to end on a tiny stack."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the expressive extra is not installed")
pytest.importorskip("dlib", reason="the avlm extra is not installed")
pytest.importorskip("av", reason="PyAV is not installed")

from speechvision.avlm.face import FaceAnalyzer, FaceError, align, read_video
from speechvision.avlm.media import animate_photo, audio_track, write_video
from speechvision.avlm.model import AVLMError

RATE = 16000


def test_a_video_keeps_its_sound_and_a_silent_one_is_refused_by_name(tmp_path):
    frames = np.full((10, 64, 64, 3), 128, np.uint8)
    wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    write_video(tmp_path / "a.mp4", frames, 25, wave, RATE)
    back = audio_track(tmp_path / "a.mp4", RATE)
    assert abs(len(back) / RATE - 1.0) < 0.15  # AAC adds a little padding
    spectrum = np.abs(np.fft.rfft(back[:RATE]))
    assert abs(np.argmax(spectrum) * RATE / (2 * (len(spectrum) - 1)) - 440) < 5
    assert read_video(tmp_path / "a.mp4").shape == (10, 64, 64, 3)
    write_video(tmp_path / "silent.mp4", frames, 25)
    with pytest.raises(FaceError, match="silent.mp4: the video has no sound"):
        audio_track(tmp_path / "silent.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(FaceError, match="bad.mp4: not a readable video"):
        audio_track(tmp_path / "bad.mp4")


def test_an_animated_real_face_follows_the_clip_expression_and_dlib_tracks_it():
    from speechvision.avlm.bundle import real_face_photo
    from speechvision.avlm.face import CANONICAL_68, PARTS

    analyzer = FaceAnalyzer()
    photo, lms = real_face_photo(analyzer)
    # an open mouth: the lower lip and chin 0.25 inter-ocular units down in the clip's frame
    open_mouth = CANONICAL_68.copy()
    for i in list(PARTS["jaw"])[5:12] + [55, 56, 57, 58, 59, 64, 65, 66, 67]:
        open_mouth[i, 1] += 0.25
    clip = np.stack([CANONICAL_68, open_mouth]) * 40 + 48  # any scale and place
    frames = animate_photo(photo, lms, clip)
    assert frames.shape == (2, 256, 256, 3) and frames.dtype == np.uint8
    tracked = [analyzer.landmarks(f) for f in frames]
    assert all(t is not None for t in tracked)
    gap = [align(t[None])[0] for t in tracked]
    mouth = [g[66, 1] - g[62, 1] for g in gap]  # inner lips apart, in inter-ocular units
    assert mouth[1] - mouth[0] > 0.1, mouth


def _tiny_stack(tmp_path):
    from test_av_emotion import _speech_corpus

    from speechvision.avlm.data.av_emotion import AVBuildConfig, build_av_emotion
    from speechvision.avlm.dialogue import train_dialogue
    from speechvision.avlm.lm import SpeechLMConfig
    from speechvision.avlm.model import AVLMConfig
    from speechvision.avlm.tokens import ExpressiveTokenizer, TokenizerConfig
    from speechvision.avlm.train_lm import train_speech_lm
    from speechvision.avlm.vocoder import VOCODER_VERSION, EnvelopeNetwork, VocoderConfig
    from speechvision.core.checkpoint import save_checkpoint

    rows = _speech_corpus(tmp_path / "speech")
    build_av_emotion(tmp_path / "speech", tmp_path / "av", AVBuildConfig(ambiguous_fraction=0.0), progress=False)
    cfg = TokenizerConfig(n_units=8, n_styles=4, n_level_bins=8)
    tok = ExpressiveTokenizer(cfg, np.zeros((8, 40), np.float32), np.zeros((4, 50), np.float32),
                              np.zeros(50, np.float32), np.ones(50, np.float32), {"v0": 7.0}, np.full(8, 2.0),
                              {"v0": -20.0})
    tok.save(tmp_path / "tokens")
    v, rng = tok.vocab, np.random.default_rng(0)
    lines = [json.dumps({"id": r["id"], "split": r["split"], "emotion": r["emotion"], "speaker": r["voice"],
                         "dialogue": r["dialogue"], "role": r["role"], "text": r["text"],
                         "audio": str(tmp_path / "speech" / r["audio"]),
                         "tokens": [v.style(0), v.level(4), v.pitch(int(rng.integers(64)))]
                         + [v.unit(int(u)) for u in rng.integers(0, 8, 10)]}) for r in rows]
    (tmp_path / "tokens" / "encoded.jsonl").write_text("\n".join(lines) + "\n")
    train_speech_lm(tmp_path / "tokens", tmp_path / "lm", SpeechLMConfig(hidden_size=32, num_layers=2, num_heads=2,
                    intermediate_size=64, dropout=0.0), steps=2, batch_size=4, progress=False, eval_every=2)
    train_dialogue(tmp_path / "av", tmp_path / "tokens", tmp_path / "lm", tmp_path / "dialogue",
                   AVLMConfig(fusion="perceiver", heads=2), pretrain_steps=1, finetune_steps=2, batch_size=4,
                   progress=False)
    torch.manual_seed(0)
    vc = EnvelopeNetwork(VocoderConfig(n_units=8, n_styles=4, hidden=16, unit_dim=8, style_dim=4, duration_hidden=8))
    (tmp_path / "vocoder").mkdir()
    save_checkpoint(tmp_path / "vocoder" / "vocoder.pt", "vocoder",
                    {"model_version": VOCODER_VERSION, "config": vc.config.to_dict(), "model": vc.state_dict()})
    return tmp_path / "tokens", tmp_path / "vocoder", tmp_path / "dialogue" / "dialogue.pt"


def test_tiny_stack_exports_within_budget_loads_and_runs_the_demo(tmp_path, monkeypatch):
    from speechvision.avlm import bundle
    from speechvision.avlm.demo import PICTURE, run_demo

    tokens, vocoder, dialogue = _tiny_stack(tmp_path)
    clips = bundle.demo_clips(tmp_path / "av", tmp_path / "clips", emotions=("happy", "sad"))
    assert [c["emotion"] for c in clips] == ["happy", "sad"]
    assert all(audio_track(c["video"]).size > 0.8 * RATE for c in clips)
    meta = bundle.export_stack(tokens, vocoder, dialogue, tmp_path / "stack", clips=clips,
                               sources={"note": "tiny test stack"})
    assert meta["synthetic"] is True and "SYNTHETIC" in meta["label"] and meta["megabytes"] < 1
    with pytest.raises(AVLMError, match="holds files already"):
        bundle.export_stack(tokens, vocoder, dialogue, tmp_path / "stack", clips=clips)
    stack = bundle.load_stack(tmp_path / "stack")
    assert [c["id"] for c in stack.clips()] == [c["id"] for c in clips]

    result = run_demo(tmp_path / "out", root=tmp_path / "stack", progress=False)
    assert result["synthetic"] is True and len(result["clips"]) == 2
    for row in result["clips"]:
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-3 and row["emotion"] in row["probabilities"]
        assert (tmp_path / "out" / row["reply"]).is_file() and row["face_frames"] == row["frames"] == 25
    assert (tmp_path / "out" / PICTURE).stat().st_size > 10_000
    again = run_demo(tmp_path / "out2", root=tmp_path / "stack", progress=False)
    assert [r["probabilities"] for r in again["clips"]] == [r["probabilities"] for r in result["clips"]]

    monkeypatch.setattr(bundle, "MAX_BUNDLE_MB", 0.001)
    with pytest.raises(AVLMError, match="over the 0 MB budget"):
        bundle.export_stack(tokens, vocoder, dialogue, tmp_path / "big", clips=clips)
    with pytest.raises(AVLMError, match="bundle.json: missing"):
        bundle.load_stack(tmp_path / "big")


def test_dialogue_evaluation_measures_references_once_and_reuses_them(tmp_path, monkeypatch):
    """The test references (real and resynthesised: judge features, transcripts, DNSMOS) are cached per tokens
    and vocoder; a second evaluation reads them instead of measuring again, with the same ceilings."""
    from speechvision.avlm import judges
    from speechvision.avlm.dialogue import evaluate_dialogue
    from speechvision.avlm.references import reference_cache_path

    tokens, vocoder, dialogue = _tiny_stack(tmp_path)
    calls = []
    real = judges.transcribe
    monkeypatch.setattr(judges, "transcribe", lambda w, r=16000: calls.append(1) or real(w, r))
    first = evaluate_dialogue(dialogue, tmp_path / "av", tokens, vocoder, tmp_path / "speech", tmp_path / "e1",
                              limit=2, progress=False)
    # features of the test split's 8 utterances (the judge's voice sets), transcripts only of the 2 scored
    # responses (real and resynthesised) and of the 2 replies
    cache = [json.loads(x) for x in reference_cache_path(tokens, vocoder).read_text().splitlines()]
    assert len(cache) == 8 and sum("text" in row["real"] for row in cache) == 2
    assert len(calls) == 2 * 2 + 2
    calls.clear()
    second = evaluate_dialogue(dialogue, tmp_path / "av", tokens, vocoder, tmp_path / "speech", tmp_path / "e2",
                               limit=2, progress=False)
    assert len(calls) == 2  # only the two replies were transcribed
    assert second["reference_real"] == first["reference_real"]
    assert second["reference_resynth"] == first["reference_resynth"]
    assert first["replies"]["n"] == 2 and 0 <= first["replies"]["wer"]
    from speechvision.avlm.data.spoken_emotion import content_recall, heard_as_answer

    rows = [json.loads(x) for x in (tmp_path / "e1" / "replies.jsonl").read_text().splitlines()]
    for block, name in (("replies", "reply"), ("reference_real", "real"), ("reference_resynth", "resynth")):
        heard = [content_recall(r["reference"], r[f"{name}_text"]) for r in rows]
        assert first[block]["content_recall"] == pytest.approx(sum(heard) / len(heard))
        assert 0 <= first[block]["answer_share"] <= 1
        answers = [heard_as_answer(r[f"{name}_text"]) for r in rows]
        assert first[block]["answer_share"] == pytest.approx(sum(answers) / len(answers))
    # the validation split, for choices: its own clips and its own reference cache, the test cache untouched
    from speechvision.avlm.dialogue import load_dialogues

    test_cache = reference_cache_path(tokens, vocoder).read_text()
    val = evaluate_dialogue(dialogue, tmp_path / "av", tokens, vocoder, tmp_path / "speech", tmp_path / "e3",
                            limit=1, split="val", temperature=0.5, progress=False)
    assert (val["split"], val["temperature"], val["replies"]["n"]) == ("val", 0.5, 1)
    replied = json.loads((tmp_path / "e3" / "replies.jsonl").read_text().splitlines()[0])["id"]
    assert replied == load_dialogues(tmp_path / "av", tokens, "val", "landmark-conv")[0]["id"]
    assert reference_cache_path(tokens, vocoder, "val").is_file()
    assert reference_cache_path(tokens, vocoder).read_text() == test_cache
