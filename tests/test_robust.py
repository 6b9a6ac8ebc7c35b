"""The robustness test set (issue 17): held-out engine, held-out phrasings, seeded degraded copies."""

import hashlib

import numpy as np
import pytest
from conftest import needs_flite

from speechvision.core.audio import load_audio
from speechvision.data.captions import HELDOUT_TEMPLATES
from speechvision.data.degrade import DegradeConfig, build_chain, degrade
from speechvision.data.manifest import load_dataset
from speechvision.data.robust import RobustConfig, build_robust


def _digest(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


@needs_flite
def test_robust_set_has_test_only_splits_and_is_reproducible(tmp_path, tiny_spoken_fashion):
    cfg = RobustConfig(images=4, unseen_images=2, babble_files=2, rooms=3, workers=1)
    a = load_dataset(build_robust(tiny_spoken_fashion, tmp_path / "a", cfg, progress=False))
    assert a.meta["splits"] == {"flite": 4, "phrasing": 4, "flite_degraded": 4, "phrasing_degraded": 4,
                                "test_degraded": 4, "test_unseen_degraded": 2}
    assert all(r.captions[0].voice.startswith("flite-") for r in a.split("flite") + a.split("flite_degraded"))
    assert not any(r.captions[0].voice.startswith("flite-") for r in a.split("phrasing"))
    stems = [t.split("{")[0] for t in HELDOUT_TEMPLATES]
    assert all(any(r.captions[0].text.startswith(s) for s in stems) for r in a.split("phrasing"))
    for r in a.split("flite") + a.split("test_degraded"):  # images and labels are the source test images'
        assert (a.root / r.image).is_file() and r.attributes["colour"] in r.class_name
    b = load_dataset(build_robust(tiny_spoken_fashion, tmp_path / "b", cfg, progress=False))
    for ra, rb in zip(a.records, b.records):  # the same build twice: the same captions, voices and degradations
        assert (ra.captions[0].text, ra.captions[0].voice) == (rb.captions[0].text, rb.captions[0].voice)
        if ra.split in ("flite", "flite_degraded", "test_degraded", "test_unseen_degraded"):  # Piper samples noise
            assert _digest(a.path(ra.captions[0].audio)) == _digest(b.path(rb.captions[0].audio)), ra.id
    build_robust(tiny_spoken_fashion, tmp_path / "a", cfg, progress=False)  # a rerun resumes, writes nothing new


def test_degradations_are_seeded_and_bounded(tiny_spoken_fashion):
    ds = load_dataset(tiny_spoken_fashion)
    wave = load_audio(ds.path(ds.split("train")[0].captions[0].audio))
    chain = build_chain(DegradeConfig())
    state = np.random.get_state()
    outs = [degrade(wave, 22050, s, chain) for s in (1, 1, 2)]
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    assert all(np.abs(o).max() <= 1.0 and len(o) >= len(wave) for o in outs)
    assert np.array_equal(np.random.get_state()[1], state[1])  # the global random state is left as it was
    with pytest.raises(ValueError):
        degrade(wave[:0], 22050, 0, chain)
