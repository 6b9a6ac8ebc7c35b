"""Expressive token layout (pure functions; no audio libraries needed)."""

import numpy as np

from speechvision.avlm.vocabulary import N_SPECIAL, Vocabulary, collapse, interleave, pitch_bin_centre, quantize_pitch


def test_collapse_removes_consecutive_duplicates_and_keeps_starts():
    kept, starts = collapse(np.array([3, 3, 5, 5, 5, 3, 7, 7]))
    assert kept.tolist() == [3, 5, 3, 7] and starts.tolist() == [0, 2, 5, 6]
    kept, starts = collapse(np.array([], dtype=np.int64))
    assert kept.size == 0 and starts.size == 0


def test_pitch_quantisation_is_monotonic_and_centres_fall_in_their_bins():
    x = np.linspace(-1.5, 1.5, 2001)
    bins = quantize_pitch(x)
    assert (np.diff(bins) >= 0).all() and bins.min() == 0 and bins.max() == 63
    centres = pitch_bin_centre(np.arange(64))
    assert (quantize_pitch(centres) == np.arange(64)).all()
    # k bins up is a factor of 2 ** (k / 32) at the default +-1 octave range
    assert np.allclose(np.diff(centres), 1 / 32)


def test_vocabulary_ranges_are_disjoint_and_named():
    v = Vocabulary(n_units=10, n_styles=5)
    assert v.unit0 == N_SPECIAL and v.pitch0 == N_SPECIAL + 10 and v.style0 == v.pitch0 + 65
    assert v.size == v.style0 + 5
    assert [v.kind(t) for t in (0, v.unit(9), v.pitch(None), v.pitch(63), v.style(4))] == \
        ["special", "unit", "pitch", "pitch", "style"]
    assert v.to_str(v.unit(3)) == "[Hu3]" and v.to_str(v.pitch(None)) == "[Pi-unvoiced]"
    assert v.to_str(v.pitch(0)) == "[Pi0]" and v.to_str(v.style(2)) == "[St2]"
    assert (np.bincount(v.kinds()) == [N_SPECIAL, 10, 65, 5]).all()


def test_interleave_orders_by_time_and_never_puts_two_pitch_or_style_tokens_together():
    streams = {"unit": (np.array([100, 101, 102]), np.array([0.0, 0.04, 0.2])),
               "pitch": (np.array([200, 201, 202]), np.array([0.0, 0.08, 0.16])),
               "style": (np.array([300]), np.array([0.0]))}
    out = interleave(streams)
    names = [n for _, n, _ in out]
    assert [t for t, _, _ in out] == sorted(t for t, _, _ in out)
    assert names[:3] == ["style", "pitch", "unit"]
    # pitch 201 (0.08) is replaced by 202 (0.16) before the next unit (0.2): it could never take effect
    assert [tok for _, _, tok in out] == [300, 200, 100, 101, 202, 102]
    for a, b in zip(names, names[1:]):
        assert not (a == b and a != "unit") and not (a == "pitch" and b == "style")
