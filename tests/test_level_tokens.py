"""Level tokens (issue 20): the layout, quantisation, the tokenizer's level stream relative to the speaker,
the sampler's constraints and the vocoder's rendering of the level."""

from itertools import pairwise

import numpy as np
import pytest
import torch

pytest.importorskip("pyworld", reason="the expressive extra is not installed (pip install -e '.[expressive]')")

from speechvision.avlm.infer import carry_state
from speechvision.avlm.lm import allowed_next
from speechvision.avlm.tokens import (
    ExpressiveTokenizer,
    TokenizerConfig,
    active_level_db,
    fit_tokenizer,
)
from speechvision.avlm.vocabulary import (
    N_SPECIAL,
    Vocabulary,
    interleave,
    level_bin_centre,
    quantize_level,
)
from speechvision.avlm.vocoder import EnvelopeNetwork, UnitVocoder, VocoderConfig, apply_level, world_targets

RATE = 16000


def _vowel(f0_hz: float, seconds: float = 1.0, amp: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 20))).astype(np.float32)


def test_level_tokens_come_last_so_older_layouts_keep_their_ids():
    old, new = Vocabulary(10, 5), Vocabulary(10, 5, n_level=16)
    assert (old.unit0, old.pitch0, old.style0) == (new.unit0, new.pitch0, new.style0)
    assert old.size == new.level0 and new.size == old.size + 16
    assert new.kind(new.level(0)) == new.kind(new.level(15)) == "level" and new.to_str(new.level(3)) == "[Lv3]"
    assert (np.bincount(new.kinds()) == [N_SPECIAL, 10, 65, 5, 16]).all()
    with pytest.raises(ValueError, match="outside"):
        old.level(0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        new.kind(new.size)


def test_level_quantisation_is_monotonic_with_known_bin_width():
    x = np.linspace(-20, 20, 4001)
    bins = quantize_level(x)
    assert (np.diff(bins) >= 0).all() and bins.min() == 0 and bins.max() == 15
    centres = level_bin_centre(np.arange(16))
    assert (quantize_level(centres) == np.arange(16)).all() and np.allclose(np.diff(centres), 1.5)


def test_interleave_puts_level_between_style_and_pitch_and_the_sampler_agrees():
    v = Vocabulary(4, 3, n_level=8)
    streams = {"unit": (np.array([v.unit(0), v.unit(1)]), np.array([0.0, 0.5])),
               "pitch": (np.array([v.pitch(3)]), np.array([0.0])),
               "style": (np.array([v.style(1)]), np.array([0.0])),
               "level": (np.array([v.level(2), v.level(5)]), np.array([0.0, 0.5]))}
    tokens = [t for _, _, t in interleave(streams)]
    assert tokens == [v.style(1), v.level(2), v.pitch(3), v.unit(0), v.level(5), v.unit(1)]
    for a, b in pairwise(tokens):
        assert allowed_next(v, a)[b], (v.to_str(a), v.to_str(b))
    kinds = v.kinds()
    after_level = allowed_next(v, v.level(1), allow_eos=False)
    assert after_level[(kinds == 1) | (kinds == 2)].all() and not after_level[(kinds == 3) | (kinds == 4)].any()
    after_style = allowed_next(v, v.style(0), allow_eos=False)
    assert after_style[kinds == 4].all() and not after_style[kinds == 3].any()
    assert not allowed_next(v, v.pitch(0))[kinds == 4].any()
    assert carry_state(v, tokens) == [v.style(1), v.level(5), v.pitch(3)]


def _fit(level_bins: int = 16) -> tuple[ExpressiveTokenizer, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    waves = [(_vowel(f0, 2.0) + 0.002 * rng.standard_normal(2 * RATE)).astype(np.float32)
             for f0 in (110, 130, 160, 200)]
    cfg = TokenizerConfig(n_units=8, n_styles=3, n_level_bins=level_bins)
    return fit_tokenizer(waves, ["a", "a", "b", "b"], cfg, progress=False), waves


def test_tokenizer_codes_level_relative_to_the_speaker_and_round_trips(tmp_path):
    tok, waves = _fit()
    assert set(tok.speaker_level_db) == {"a", "b"}
    assert abs(tok.speaker_level_db["b"] - active_level_db(waves[2], RATE)) < 1.0
    v = tok.vocab
    plain = tok.level_tokens(waves[2], "b") - v.level0
    louder = tok.level_tokens(waves[2] * 10 ** (6 / 20), "b") - v.level0
    softer = tok.level_tokens(waves[2] * 10 ** (-6 / 20), "b") - v.level0
    # +-6 dB is +-4 bins of 1.5 dB (one bin of slack for the floor at a bin edge)
    assert np.all(np.abs(louder - plain - 4) <= 1) and np.all(np.abs(plain - softer - 4) <= 1)
    # an unknown speaker falls back to its own level, so its gain does not move the tokens
    assert np.array_equal(tok.level_tokens(waves[2] * 2.0), tok.level_tokens(waves[2]))
    enc = tok.encode(waves[2], "b")
    assert any(v.kind(t) == "level" for t in enc.tokens) and len(enc.level_frames) == 4  # 2 s at 2 Hz
    assert set(tok.split_streams(enc.tokens)["level"]) <= set(range(v.level0, v.size))
    tok.save(tmp_path / "t")
    again = ExpressiveTokenizer.load(tmp_path / "t")
    assert again.speaker_level_db == tok.speaker_level_db and again.encode(waves[2], "b").tokens == enc.tokens


def test_tokenizers_without_a_level_stream_are_unchanged():
    tok, waves = _fit(level_bins=0)
    assert tok.speaker_level_db == {} and tok.vocab.n_level == 0
    enc = tok.encode(waves[0], "a")
    assert all(tok.vocab.kind(t) != "level" for t in enc.tokens) and enc.level_frames.size == 0
    assert (tok.split_streams(enc.tokens)["level"] == -1).all()
    with pytest.raises(ValueError, match="no level stream"):
        tok.level_tokens(waves[0])


def test_apply_level_reaches_each_window_target_without_steps():
    wave = np.concatenate([_vowel(150, 1.0, 0.05), _vowel(150, 1.0, 0.2)])
    target = np.full(200, -26.0)
    out = apply_level(wave, target, RATE, frames_per_window=50)
    for half in (out[:RATE], out[RATE:]):
        assert abs(active_level_db(half[RATE // 4:-RATE // 4], RATE) + 26.0) < 1.0
    # the gain is interpolated in dB between window centres, so it never steps at window edges
    ok = np.abs(wave) > 1e-3
    gain_db = 20 * np.log10(np.abs(out[ok] / wave[ok]))
    assert np.abs(np.diff(gain_db)).max() < 0.01
    assert gain_db.max() - gain_db.min() > 11  # the soft first second was raised 12 dB more than the loud one
    loud = apply_level(wave, np.full(200, 6.0), RATE)
    assert np.abs(loud).max() <= 0.99 + 1e-6  # stays in PCM range


def test_vocoder_renders_level_tokens_as_the_spread_they_code():
    """Four bins up (+6 dB) make the decoded speech 6 dB louder; without level tokens nothing changes."""
    cfg = TokenizerConfig(n_units=4, n_styles=2, n_level_bins=16)
    tok = ExpressiveTokenizer(cfg, np.zeros((4, 4), np.float32), np.zeros((2, 4), np.float32), np.zeros(4, np.float32),
                              np.ones(4, np.float32), {"a": float(np.log2(150.0))}, np.full(4, 3.0),
                              {"a": -24.0})
    vc = EnvelopeNetwork(VocoderConfig(n_units=4, n_styles=2, hidden=16, unit_dim=8, style_dim=4, duration_hidden=0))
    _, coded = world_targets(_vowel(150.0).astype(np.float64), RATE, vc.config)
    vc.target_mean.copy_(torch.from_numpy(coded.mean(0)))
    vc.target_std.fill_(1e-4)
    speaker = UnitVocoder(tok, vc.eval())
    v = tok.vocab
    body = [v.pitch(32)] + [v.unit(k % 4) for k in range(40)]
    levels = {}
    for b in (6, 8, 10):
        wave = speaker.decode([v.style(0), v.level(b)] + body, "a")
        levels[b] = active_level_db(wave, RATE)
    assert abs(levels[8] - (-24.0 + level_bin_centre(8))) < 1.0
    assert abs(levels[10] - levels[6] - 6.0) < 1.0, levels
    # an explicit reference level moves the whole utterance
    ref = active_level_db(speaker.decode([v.style(0), v.level(8)] + body, "a", speaker_level_db=-30.0), RATE)
    assert abs(ref - (-30.0 + level_bin_centre(8))) < 1.0
    no_level = speaker.decode([v.style(0)] + body, "a")
    cfg0 = TokenizerConfig(n_units=4, n_styles=2)
    plain = UnitVocoder(ExpressiveTokenizer(cfg0, tok.unit_centroids, tok.style_centroids, tok.style_mean,
                                            tok.style_std, tok.speaker_log2_f0, tok.unit_durations), vc)
    assert np.array_equal(no_level, plain.decode([v.style(0)] + body, "a"))


def test_level_report_gives_each_domain_its_angry_to_sad_spread_and_the_gap():
    from speechvision.avlm.evaluate import level_report, rms_dbfs

    r = level_report({("original", "angry"): [-18.0, -19.0], ("original", "sad"): [-24.6],
                      ("resynth", "angry"): [-20.9], ("resynth", "sad"): [-23.5], ("resynth", "happy"): [-21.0]})
    assert r["mean_db"]["original"] == {"angry": -18.5, "sad": -24.6}
    assert r["angry_sad_spread_db"] == {"original": 6.1, "resynth": 2.6} and r["spread_gap_db"] == -3.5
    assert level_report({("original", "angry"): [-18.0]})["spread_gap_db"] is None
    assert abs(rms_dbfs(np.full(100, 0.1, np.float32)) + 20.0) < 1e-6


def test_a_corpus_encodes_with_an_already_fitted_tokenizer_and_the_cli_checks_its_options(tmp_path, capsys):
    """`speechlm tokenize --tokenizer FOLDER` (issue 20): nothing is refitted, so a vocoder trained on that
    tokenizer's units reads the new tokens; voices it does not know are enrolled, known ones keep their stats."""
    import json

    from test_av_emotion import _speech_corpus

    from speechvision.avlm.corpus import load_encoded, tokenize_corpus
    from speechvision.cli import main

    rows = _speech_corpus(tmp_path / "speech")
    rng = np.random.default_rng(0)
    cfg = TokenizerConfig(n_units=8, n_styles=4, n_level_bins=8)
    fitted = ExpressiveTokenizer(cfg, rng.standard_normal((8, 40)).astype(np.float32),
                                 rng.standard_normal((4, 50)).astype(np.float32), np.zeros(50, np.float32),
                                 np.ones(50, np.float32), {"v0": 7.0}, np.full(8, 2.0), {"v0": -20.0})
    fitted.save(tmp_path / "fitted")
    tokenize_corpus(tmp_path / "speech", tmp_path / "tokens", tokenizer=tmp_path / "fitted", progress=False)
    again = ExpressiveTokenizer.load(tmp_path / "tokens")
    assert np.array_equal(again.unit_centroids, fitted.unit_centroids) and again.config == cfg
    # the corpus is noise bursts: no voiced F0 to enrol, but a level for each new voice
    assert again.speaker_log2_f0 == {"v0": 7.0} and again.speaker_level_db["v0"] == -20.0
    assert set(again.speaker_level_db) == {"v0", "v1", "v2"}
    encoded = load_encoded(tmp_path / "tokens")
    assert [r["id"] for r in encoded] == [r["id"] for r in rows]
    v = again.vocab
    units = [t - v.unit0 for r in encoded for t in r["tokens"] if v.unit0 <= t < v.unit0 + 8]
    assert units and set(units) <= set(range(8))

    base = ["speechlm", "tokenize", "--data", str(tmp_path / "speech"), "--out", str(tmp_path / "t2")]
    for extra, message in ((["--tokenizer", str(tmp_path / "nothing")], "no tokenizer.json there"),
                           (["--tokenizer", str(tmp_path / "fitted"), "--units", "300"], "fixes --units")):
        with pytest.raises(SystemExit) as e:
            main(base + extra)
        assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "t2").exists()
    assert json.loads((tmp_path / "tokens" / "tokenizer.json").read_text())["config"]["n_units"] == 8
