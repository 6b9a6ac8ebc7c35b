"""Expressive speech stack: sampler constraints, a tiny LM train with exact resume, the vocoder's pitch
control, the tokenizer round trip and the corpus plan (issue 7)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pyworld", reason="the expressive extra is not installed (pip install -e '.[expressive]')")

from speechvision.avlm.data.spoken_emotion import EMOTIONS, EmotionBuildConfig, plan  # noqa: E402
from speechvision.avlm.lm import SpeechLMConfig, allowed_next, build_lm, sample, top_p_filter  # noqa: E402
from speechvision.avlm.tokens import ExpressiveTokenizer, TokenizerConfig, f0_track, fit_tokenizer
from speechvision.avlm.vocabulary import Vocabulary

RATE = 16000


def _tiny_lm(vocab: Vocabulary, seed: int = 0):
    torch.manual_seed(seed)
    return build_lm(SpeechLMConfig(vocab_size=vocab.size, hidden_size=32, num_layers=1, num_heads=2,
                                   intermediate_size=64, max_positions=512, dropout=0.0))


def _check_layout(vocab: Vocabulary, tokens: list[int]) -> None:
    kinds = [vocab.kind(t) for t in tokens]
    assert "special" not in kinds
    for a, b in zip(kinds, kinds[1:]):
        assert not (a == "pitch" and b != "unit"), (a, b)
        assert not (a == "style" and b == "style"), (a, b)


def test_allowed_next_follows_the_interleaved_layout():
    v = Vocabulary(n_units=6, n_styles=3)
    kinds = v.kinds()
    after_unit = allowed_next(v, v.unit(0))
    assert after_unit[kinds > 0].all() and after_unit[v.special("<eos>")]
    assert not after_unit[v.special("<speech_mask>")] and not after_unit[v.special("<bos>")]
    after_pitch = allowed_next(v, v.pitch(5), allow_eos=False)
    assert after_pitch[kinds == 1].all() and not after_pitch[kinds != 1].any()
    after_style = allowed_next(v, v.style(1))
    assert after_style[kinds == 2].all() and not after_style[kinds == 3].any()


def test_top_p_keeps_the_token_that_crosses_the_threshold():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_sampling_is_speech_only_never_repeats_pitch_or_style_and_is_seeded():
    v = Vocabulary(n_units=8, n_styles=4)
    model = _tiny_lm(v)
    prompt = [v.special("<bos>"), v.special("[Speech]"), v.style(0), v.pitch(3), v.unit(1)]
    # a random model at a high temperature reaches every kind of token
    a = sample(model, v, prompt, max_new_tokens=300, temperature=3.0, top_p=1.0, seed=1, min_units=300)
    assert len(a) == 300 and {v.kind(t) for t in a} == {"unit", "pitch", "style"}
    _check_layout(v, [prompt[-1]] + a)
    assert a == sample(model, v, prompt, max_new_tokens=300, temperature=3.0, top_p=1.0, seed=1, min_units=300)
    assert a != sample(model, v, prompt, max_new_tokens=300, temperature=3.0, top_p=1.0, seed=2, min_units=300)
    with pytest.raises(ValueError):
        sample(model, v, prompt, temperature=0.0)
    with pytest.raises(ValueError):
        sample(model, v, [], temperature=1.0)


def _fake_tokens_dir(tmp_path, n_units=8, n_styles=4, n=40):
    """A tokenizer folder + encoded.jsonl whose sequences follow a learnable pattern."""
    cfg = TokenizerConfig(n_units=n_units, n_styles=n_styles)
    tok = ExpressiveTokenizer(cfg, np.zeros((n_units, 4), np.float32), np.zeros((n_styles, 4), np.float32),
                              np.zeros(4, np.float32), np.ones(4, np.float32), {"a": 7.0})
    tok.save(tmp_path)
    v = tok.vocab
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        start = int(rng.integers(0, n_units))
        toks = [v.style(i % n_styles)]
        for k in range(12):  # units count up mod n_units; a pitch token before every third unit
            if k % 3 == 0:
                toks.append(v.pitch(int(rng.integers(0, 64))))
            toks.append(v.unit((start + k) % n_units))
        split = "train" if i < n - 8 else ("val" if i < n - 4 else "test")
        lines.append(json.dumps({"id": f"u{i}", "split": split, "emotion": EMOTIONS[i % 4], "speaker": "a",
                                 "dialogue": i, "role": "question", "tokens": toks}))
    (tmp_path / "encoded.jsonl").write_text("\n".join(lines) + "\n")
    return tok


def test_tiny_speech_lm_train_lowers_perplexity_and_resumes_exactly(tmp_path):
    from speechvision.avlm.corpus import load_encoded
    from speechvision.avlm.lm import load_lm, load_lm_checkpoint
    from speechvision.avlm.train_lm import perplexity, sequences, train_speech_lm

    tok = _fake_tokens_dir(tmp_path / "tokens")
    cfg = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=128, dropout=0.0)
    val = sequences(load_encoded(tmp_path / "tokens", "val"), tok.vocab)
    torch.manual_seed(0)
    before = perplexity(build_lm(SpeechLMConfig(vocab_size=tok.vocab.size, **cfg)), val)
    train_speech_lm(tmp_path / "tokens", tmp_path / "lm", SpeechLMConfig(**cfg), steps=60, batch_size=8, lr=1e-2,
                    progress=False, eval_every=30)
    model, _ = load_lm(tmp_path / "lm")
    after = perplexity(model, val)
    assert after < 0.6 * before, (before, after)
    log = [json.loads(x) for x in (tmp_path / "lm" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [30, 60] and all("val_ppl" in e for e in log)
    best = load_lm_checkpoint(tmp_path / "lm", "best.pt")  # the lowest-val-perplexity checkpoint is kept
    assert best["val_ppl"] == min(e["val_ppl"] for e in log)
    assert best["step"] == min(log, key=lambda e: e["val_ppl"])["step"] and "optimizer" not in best

    # 4 steps in one go == stopped after 2 steps (a kill after the checkpoint), then resumed
    train_speech_lm(tmp_path / "tokens", tmp_path / "a", SpeechLMConfig(**cfg), steps=4, batch_size=4,
                    progress=False, eval_every=2)
    train_speech_lm(tmp_path / "tokens", tmp_path / "b", SpeechLMConfig(**cfg), steps=4, batch_size=4,
                    progress=False, eval_every=2, stop_after=2)
    assert load_lm_checkpoint(tmp_path / "b")["step"] == 2
    train_speech_lm(tmp_path / "tokens", tmp_path / "b", SpeechLMConfig(**cfg), steps=4, batch_size=4,
                    progress=False, eval_every=2, resume=True)
    a, b = load_lm_checkpoint(tmp_path / "a"), load_lm_checkpoint(tmp_path / "b")
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def _vowel(f0_hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.1 * sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 20))).astype(np.float32)


def test_vocoder_decode_follows_the_pitch_tokens(tmp_path):
    """k bins up moves the decoded median F0 by 2 ** (k / 32) (the issue's pitch-control target, here on
    a vocoder whose envelope is pinned to a vowel's, so only the pitch path is tested)."""
    from speechvision.avlm.vocoder import EnvelopeNetwork, UnitVocoder, VocoderConfig, world_targets

    cfg = TokenizerConfig(n_units=4, n_styles=2)
    tok = ExpressiveTokenizer(cfg, np.zeros((4, 4), np.float32), np.zeros((2, 4), np.float32), np.zeros(4, np.float32),
                              np.ones(4, np.float32), {"a": float(np.log2(150.0))}, np.full(4, 3.0))
    vc = EnvelopeNetwork(VocoderConfig(n_units=4, n_styles=2, hidden=16, unit_dim=8, style_dim=4, duration_hidden=0))
    _, coded = world_targets(_vowel(150.0).astype(np.float64), RATE, vc.config)
    vc.target_mean.copy_(torch.from_numpy(coded.mean(0)))
    vc.target_std.fill_(1e-4)
    speaker = UnitVocoder(tok, vc.eval())
    v = tok.vocab
    tokens = [v.style(0), v.pitch(32)] + [v.unit(k % 4) for k in range(40)]
    base = speaker.decode(tokens, "a")
    assert abs(len(base) / RATE - 40 * 3 * 0.04) < 0.05  # 40 units x 3 frames x 40 ms
    f = f0_track(base, RATE)
    assert abs(np.median(f[f > 0]) / (2 ** (np.log2(150) + (32.5 / 32 - 1))) - 1) < 0.03
    for k in (-8, 8):
        shifted = speaker.decode(tok.shift_pitch(tokens, k), "a")
        fs = f0_track(shifted, RATE)
        ratio = np.median(fs[fs > 0]) / np.median(f[f > 0])
        assert abs(ratio / 2 ** (k / 32) - 1) < 0.1, (k, ratio)
    unvoiced = speaker.decode([v.pitch(None)] + [v.unit(0)] * 20, "a")
    assert (f0_track(unvoiced, RATE) > 0).mean() < 0.2


def test_duration_predictor_learns_run_lengths_and_sets_the_decoded_length():
    """The duration targets match the frame stream; a few hundred steps learn per-unit run lengths; decode
    lasts the predicted durations and ``rate`` scales them."""
    from speechvision.avlm.train_vocoder import _duration_batch, duration_examples
    from speechvision.avlm.vocoder import EnvelopeNetwork, UnitVocoder, VocoderConfig

    cfg = TokenizerConfig(n_units=4, n_styles=2)
    tok = ExpressiveTokenizer(cfg, np.zeros((4, 4), np.float32), np.zeros((2, 4), np.float32), np.zeros(4, np.float32),
                              np.ones(4, np.float32), {"a": float(np.log2(150.0))}, np.full(4, 3.0))
    v, true_runs = tok.vocab, {0: 1, 1: 6, 2: 2, 3: 4}
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(30):
        units = rng.permutation(4).tolist() + rng.permutation(4).tolist()
        units = [u for i, u in enumerate(units) if i == 0 or u != units[i - 1]]
        frames = np.repeat(units, [true_runs[u] for u in units])
        tokens = [v.style(0), v.pitch(30)] + [v.unit(u) for u in units]
        rows.append({"tokens": tokens, "unit_frames": frames.tolist(), "speaker": "a"})
    items = [duration_examples(tok, r) for r in rows]
    assert all(x is not None for x in items)
    assert items[0][3].tolist() == [true_runs[u] for u in items[0][0]]
    torch.manual_seed(0)
    vc = EnvelopeNetwork(VocoderConfig(n_units=4, n_styles=2, hidden=8, unit_dim=8, style_dim=4, duration_hidden=16))
    opt = torch.optim.Adam(vc.duration.parameters(), lr=1e-2)
    for _ in range(300):
        u, p, s, d, m = _duration_batch(items, rng, 8)
        loss = (((vc.duration(u, p, s) - torch.log1p(d)) ** 2) * m).sum() / m.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    vc.eval()
    u, p, s, d, m = _duration_batch(items, rng, 8)
    pred = torch.expm1(vc.duration(u, p, s)).detach()
    assert (pred[m] - d[m]).abs().mean() < 0.5, (pred[m], d[m])
    speaker = UnitVocoder(tok, vc)
    tokens = [v.style(0), v.pitch(30)] + [v.unit(1), v.unit(0)] * 5
    n = len(speaker.decode(tokens, "a"))
    assert abs(n / RATE - 5 * (6 + 1) * 0.04) < 0.1
    assert abs(len(speaker.decode(tokens, "a", rate=2.0)) / n - 0.5) < 0.05


def test_tokenizer_fit_encode_and_stream_split(tmp_path):
    rng = np.random.default_rng(0)
    waves = [(_vowel(f0, 2.0) * (1 + 0.5 * np.sin(np.linspace(0, 9, 2 * RATE)))
              + 0.01 * rng.standard_normal(2 * RATE)).astype(np.float32) for f0 in (110, 130, 160, 200)]
    cfg = TokenizerConfig(n_units=8, n_styles=3)
    tok = fit_tokenizer(waves, ["a", "a", "b", "b"], cfg, progress=False)
    assert set(tok.speaker_log2_f0) == {"a", "b"}
    assert abs(2 ** tok.speaker_log2_f0["a"] - 120) < 15
    enc = tok.encode(waves[2], "b")
    v = tok.vocab
    _check_layout(v, enc.tokens)
    streams = tok.split_streams(enc.tokens)
    assert len(streams["units"]) == sum(v.kind(t) == "unit" for t in enc.tokens)
    assert (streams["unit_frames"] >= 1).all()
    tok.save(tmp_path / "t")
    again = ExpressiveTokenizer.load(tmp_path / "t")
    assert again.encode(waves[2], "b").tokens == enc.tokens
    with pytest.raises(ValueError, match="shorter than one"):
        tok.encode(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="no content unit"):
        tok.split_streams([v.pitch(3)])


def test_corpus_plan_splits_by_dialogue_with_held_out_test_voices():
    cfg = EmotionBuildConfig(dialogues=20)
    rows = plan(cfg)
    assert len(rows) == 20 * 2 * len(EMOTIONS) and rows == plan(cfg)
    by_split = {s: {r["dialogue"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert len(by_split["train"]) == 14 and len(by_split["val"]) == 3 and len(by_split["test"]) == 3
    assert not (by_split["train"] & by_split["test"])
    test_voices = {r["voice"] for r in rows if r["split"] == "test"}
    assert test_voices <= set(cfg.heldout_voices) and not test_voices & set(cfg.train_voices)
    for d in by_split["test"]:  # every sentence is spoken in every emotion
        assert sorted(r["emotion"] for r in rows if r["dialogue"] == d and r["role"] == "question") == sorted(EMOTIONS)


def test_answering_grammar_replies_reuse_the_question_content_words():
    """Issue 20: every reply answers its question with the question's content words (verb forms aside), the
    same question always gets the same reply, and the v1 grammar is still there for old corpora."""
    from speechvision.avlm.data.spoken_emotion import EmotionCorpusError, content_words, heard_as_answer

    assert content_words("Did Maria sell the car last night?") == {"maria", "sell", "car", "night"}
    assert heard_as_answer(" yes, Maria sold the car.") and not heard_as_answer("Maria said yes.")
    rows = plan(EmotionBuildConfig(dialogues=300))
    text = {(r["dialogue"], r["role"]): r["text"] for r in rows}
    replies = {}
    for d in range(300):
        q, r = text[d, "question"], text[d, "response"]
        missing = content_words(q) - content_words(r)
        assert not missing, (q, r, missing)
        assert replies.setdefault(q, r) == r
    assert "Yes, I " in " ".join(text[d, "response"] for d in range(300))  # "you" is answered with "I"
    v1 = plan(EmotionBuildConfig(dialogues=20, grammar="v1"))
    assert v1 != plan(EmotionBuildConfig(dialogues=20)) and len(v1) == 20 * 2 * len(EMOTIONS)
    with pytest.raises(EmotionCorpusError, match="unknown grammar 'nope'"):
        plan(EmotionBuildConfig(dialogues=2, grammar="nope"))


def test_speaker_normalised_judge_removes_each_voice_offset():
    """Emotion shifts features relative to the voice; a held-out voice with a large offset fools the raw
    classifier but not the speaker-normalised one (reference: that voice's own utterances)."""
    from speechvision.avlm.judges import EmotionJudge, speaker_normalise

    rng = np.random.default_rng(0)
    shift = {"neutral": 0.0, "happy": 1.0, "angry": 2.0, "sad": -1.0}

    def voice(offset, n=40):
        labels = [e for e in shift for _ in range(n)]
        f = np.stack([[shift[e] + offset, rng.normal()] for e in labels]) + 0.2 * rng.standard_normal((len(labels), 2))
        return f, labels

    train = [voice(o) for o in (-1.0, 0.0, 1.0)]
    feats = np.concatenate([f for f, _ in train])
    labels = sum((lab for _, lab in train), [])
    speakers = sum(([str(i)] * len(lab) for i, (_, lab) in enumerate(train)), [])
    judge = EmotionJudge.fit(feats, labels, speakers)
    test, truth = voice(4.0)  # far outside the training voices
    raw = np.mean([p == t for p, t in zip(judge.predict(test), truth)])
    norm = np.mean([p == t for p, t in zip(judge.predict(test, test), truth)])
    assert norm > 0.9 and raw < 0.5, (raw, norm)
    assert np.allclose(speaker_normalise(test, test).mean(0), 0, atol=1e-6)


def test_continuation_prompt_opens_the_next_turn_as_training_sequences_do():
    from speechvision.avlm.infer import prompt_ids
    from speechvision.avlm.train_lm import sequences

    v = Vocabulary(n_units=4, n_styles=2)
    q, r = [v.style(0), v.unit(1)], [v.pitch(3), v.unit(2)]
    train = sequences([{"dialogue": 0, "emotion": "sad", "role": "question", "tokens": q},
                       {"dialogue": 0, "emotion": "sad", "role": "response", "tokens": r}], v)[0]
    prompt = prompt_ids(v, q)
    assert train[:len(prompt)] == prompt  # the prompt is a prefix of a training sequence
    assert prompt_ids(v, q, next_turn=False) == prompt[:-1]


def test_voice_conditioned_vocoder_picks_the_named_or_nearest_training_voice():
    """A voice-conditioned vocoder needs a voice, renders the named training voice, and gives a held-out
    speaker the training voice with the nearest mean F0; its config survives the checkpoint round trip."""
    from speechvision.avlm.vocoder import EnvelopeNetwork, UnitVocoder, VocoderConfig

    means = {"low": float(np.log2(100.0)), "high": float(np.log2(220.0)), "new": float(np.log2(200.0))}
    tok = ExpressiveTokenizer(TokenizerConfig(n_units=4, n_styles=2), np.zeros((4, 4), np.float32),
                              np.zeros((2, 4), np.float32), np.zeros(4, np.float32), np.ones(4, np.float32), means,
                              np.full(4, 3.0))
    cfg = VocoderConfig(n_units=4, n_styles=2, hidden=8, unit_dim=8, style_dim=4, duration_hidden=0,
                        speakers=("high", "low"), speaker_dim=4)
    assert VocoderConfig.from_dict(cfg.to_dict()) == cfg
    torch.manual_seed(0)
    vc = EnvelopeNetwork(cfg).eval()
    assert vc.voice_index("low") == 1 and vc.voice_index("new", means["new"], means) == 0
    assert vc.voice_index(None, float(np.log2(90.0)), means) == 1
    assert EnvelopeNetwork(VocoderConfig(n_units=4, n_styles=2, hidden=8)).voice_index("low") is None
    u, p, s = torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 5, 3), torch.zeros(1, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="voice-conditioned"):
        vc(u, p, s)
    assert not torch.allclose(vc(u, p, s, torch.tensor([0])), vc(u, p, s, torch.tensor([1])))
    speaker, v = UnitVocoder(tok, vc), tok.vocab
    tokens = [v.style(0), v.pitch(32)] + [v.unit(k % 4) for k in range(20)]
    assert np.array_equal(speaker.decode(tokens, "new"), speaker.decode(tokens, "new", voice="high"))
    assert not np.array_equal(speaker.decode(tokens, "new"), speaker.decode(tokens, "new", voice="low"))


def test_choose_voice_sets_the_lowest_wer_voice_in_the_checkpoint(tmp_path, monkeypatch):
    """``choose_voice`` measures each training voice's WER on the split, writes the best as
    ``default_voice`` (held-out speakers then decode in it) and refuses a voice-independent vocoder."""
    import speechvision.avlm.judges as ee
    from speechvision.avlm.train_vocoder import choose_voice
    from speechvision.avlm.vocoder import (
        VOCODER_VERSION,
        EnvelopeNetwork,
        UnitVocoder,
        VocoderConfig,
        VocoderError,
        load_vocoder,
    )
    from speechvision.core.checkpoint import save_checkpoint
    from speechvision.core.tts import write_wav_atomic

    means = {"low": float(np.log2(100.0)), "high": float(np.log2(220.0)), "new": float(np.log2(105.0))}
    tok = ExpressiveTokenizer(TokenizerConfig(n_units=4, n_styles=2), np.zeros((4, 4), np.float32),
                              np.zeros((2, 4), np.float32), np.zeros(4, np.float32), np.ones(4, np.float32), means,
                              np.full(4, 3.0))
    tok.save(tmp_path / "tok")
    v = tok.vocab
    tokens = [v.style(0), v.pitch(32)] + [v.unit(k % 4) for k in range(20)]
    write_wav_atomic(tmp_path / "a.wav", _vowel(150.0), RATE)
    row = {"id": "x", "split": "val", "speaker": "low", "text": "a b", "audio": str(tmp_path / "a.wav"),
           "tokens": tokens}
    (tmp_path / "tok" / "encoded.jsonl").write_text(json.dumps(row) + "\n")
    cfg = VocoderConfig(n_units=4, n_styles=2, hidden=8, unit_dim=8, style_dim=4, duration_hidden=0,
                        speakers=("high", "low"), speaker_dim=4)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "voc" / "vocoder.pt", "vocoder",
                    {"model_version": VOCODER_VERSION, "config": cfg.to_dict(), "model": EnvelopeNetwork(cfg).state_dict()})
    speaker = UnitVocoder.load(tmp_path / "tok", tmp_path / "voc")
    assert np.array_equal(speaker.decode(tokens, "new"), speaker.decode(tokens, "new", voice="low"))  # nearest F0
    high = speaker.decode(tokens, "low", voice="high")
    monkeypatch.setattr(ee, "transcribe", lambda w, *a: "a b" if np.array_equal(w, high) else "c")
    out = choose_voice(tmp_path / "tok", tmp_path / "voc", progress=False)
    assert out["default_voice"] == "high" and out["wer"]["high"] == 0.0 and out["wer"]["low"] == 1.0
    assert load_vocoder(tmp_path / "voc").config.default_voice == "high"
    saved = torch.load(tmp_path / "voc" / "vocoder.pt", weights_only=True)
    assert "path" not in saved and saved["kind"] == "vocoder"  # re-saved state, not the loaded envelope
    assert np.array_equal(UnitVocoder.load(tmp_path / "tok", tmp_path / "voc").decode(tokens, "new"),
                          speaker.decode(tokens, "new", voice="high"))
    assert "choose_voice" in (tmp_path / "voc" / "log.jsonl").read_text()
    plain = VocoderConfig(n_units=4, n_styles=2, hidden=8, duration_hidden=0)
    save_checkpoint(tmp_path / "plain" / "vocoder.pt", "vocoder",
                    {"model_version": VOCODER_VERSION, "config": plain.to_dict(), "model": EnvelopeNetwork(plain).state_dict()})
    with pytest.raises(VocoderError, match="not voice-conditioned"):
        choose_voice(tmp_path / "tok", tmp_path / "plain", progress=False)
    from speechvision.cli import main

    assert main(["speechlm", "choose-voice", "--tokens", str(tmp_path / "tok"), "--vocoder", str(tmp_path / "voc")]) == 0
    assert main(["speechlm", "choose-voice", "--tokens", str(tmp_path / "tok"), "--vocoder", str(tmp_path / "plain")]) == 1
