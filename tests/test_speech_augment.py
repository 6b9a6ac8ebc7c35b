"""Augmented training speech (issue 17, item 3): seeded copies, per-epoch draws, and the SEN reading them."""

import json
import shutil

import numpy as np
import pytest

from speechvision.data.manifest import DatasetError, load_dataset
from speechvision.data.speech_augment import build_speech_augment, copy_for_epoch


def test_copy_for_epoch_is_seeded_and_mixes_clean_and_copies():
    draws = [copy_for_epoch(0, e, "a.wav", 3, 0.25) for e in range(2000)]
    assert draws == [copy_for_epoch(0, e, "a.wav", 3, 0.25) for e in range(2000)]
    counts = np.bincount(draws, minlength=4) / len(draws)
    assert abs(counts[0] - 0.25) < 0.04 and all(abs(c - 0.25) < 0.04 for c in counts[1:])
    assert {copy_for_epoch(0, e, "a.wav", 3, 0.0) for e in range(200)} == {1, 2, 3}


def test_speech_augment_writes_copies_and_the_sen_trains_on_them(tmp_path, tiny_spoken_fashion):
    from tests.test_sen import _tiny_cfg

    from speechvision.core.audio import load_audio
    from speechvision.s2igan.sen_data import SENInputs
    from speechvision.s2igan.train_sen import train_sen

    data = tmp_path / "sf"
    shutil.copytree(tiny_spoken_fashion, data, ignore=shutil.ignore_patterns("cache"))
    cfg = _tiny_cfg(**{"data.speech_augment.enabled": "true", "data.speech_augment.copies": 2, "sen.epochs": 1})
    with pytest.raises(DatasetError, match="speech-augment --data"):
        train_sen(data, tmp_path / "run0", cfg, progress=False)
    index = json.loads(build_speech_augment(data, 2, rooms=2, babble_files=2, progress=False).read_text())
    ds = load_dataset(data)
    train = {c.audio for r in ds.split("train") for c in r.captions}
    assert set(index["files"]) == train and all(len(v) == 2 for v in index["files"].values())
    first = next(iter(index["files"]))
    a, b = (load_audio(data / p) for p in index["files"][first])
    assert not np.array_equal(a, b) and np.isfinite(a).all()
    inputs = SENInputs.load(ds, cfg, progress=False, views=True)
    clean, _ = inputs.speech_batch([first])
    versions = {tuple(inputs.speech_batch([first], epoch=e)[1].tolist()) for e in range(12)}
    assert len(versions) > 1 and inputs.speech_batch([first])[0].equal(clean)  # no epoch: the clean file
    train_sen(data, tmp_path / "run", cfg, progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
