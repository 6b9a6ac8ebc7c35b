import json

import numpy as np
import pytest
from PIL import Image

from speechvision.data.captions import COLOURS, FASHION_CLASSES, TEMPLATES, caption, caption_pool
from speechvision.data.manifest import DatasetError, load_dataset
from speechvision.data.spoken_fashion import (
    BuildConfig,
    build_spoken_fashion,
    colourise,
    heldout_combinations,
    load_fashion_mnist,
)


def test_grammar_mentions_class_and_colour_and_swaps_cleanly():
    assert len(TEMPLATES) >= 20
    rng = np.random.default_rng(0)
    for g in FASHION_CLASSES:
        for c in COLOURS:
            for text in caption_pool(g, c, 12, rng):
                assert c in text.split()
    a, b = caption(3, "sneaker", 0, "red"), caption(3, "sneaker", 0, "orange")
    assert a.replace("red", "X").replace(" a ", " ") == b.replace("orange", "X").replace(" an ", " ")
    assert "an orange" in caption(0, "bag", 0, "orange")
    assert "are" in caption(8, "trousers", 0, "red")


def test_colourise_formula():
    img = np.zeros((28, 28), np.uint8)
    img[10:18, 10:18] = 255
    out = colourise(img, (30, 70, 220))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (255, 255, 255)       # background stays white
    assert tuple(out[32, 32]) == (30, 70, 220)        # full intensity takes the colour


def test_heldout_combinations_are_distinct():
    combos = heldout_combinations()
    assert len(combos) >= 8 and len({g for g, _ in combos}) == len(combos)


def test_build_without_audio(tmp_path, fake_fashion_mnist):
    out = build_spoken_fashion(tmp_path / "sf", fashion_mnist=fake_fashion_mnist,
                               config=BuildConfig(images=60, unseen_images=16, synthesize=False), progress=False)
    ds = load_dataset(out)
    assert ds.meta["splits"] == {"train": 48, "val": 4, "test": 8, "test_unseen": 16}
    unseen = {r.class_id for r in ds.split("test_unseen")}
    seen = {r.class_id for r in ds.records if r.split != "test_unseen"}
    assert unseen and not unseen & seen
    for r in ds.records:
        assert len(r.captions) == 10
        assert all(r.attributes["colour"] in c.text and c.audio is None for c in r.captions)
        assert Image.open(out / r.image).size == (64, 64)
    heldout = ds.heldout_voices
    assert not any(c.voice in heldout for r in ds.split("train") + ds.split("val") for c in r.captions)


def test_build_with_audio_is_deterministic_and_resumable(tmp_path, fake_fashion_mnist):
    cfg = BuildConfig(images=6, unseen_images=2, workers=1)
    out = build_spoken_fashion(tmp_path / "a", fashion_mnist=fake_fashion_mnist, config=cfg, progress=False)
    ds = load_dataset(out)  # validates that every audio file exists
    assert all(c.audio for r in ds.records for c in r.captions)
    first = (out / "manifest.jsonl").read_text()
    victim = out / ds.records[0].captions[0].audio
    victim.unlink()
    build_spoken_fashion(out, fashion_mnist=fake_fashion_mnist, config=cfg, progress=False)
    assert victim.is_file() and (out / "manifest.jsonl").read_text() == first


def test_missing_fashion_mnist_names_file_and_fix(tmp_path):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz: missing; install"):
        load_fashion_mnist(tmp_path)


def test_manifest_validation_reports_every_missing_file(tmp_path, fake_fashion_mnist):
    out = build_spoken_fashion(tmp_path / "sf", fashion_mnist=fake_fashion_mnist,
                               config=BuildConfig(images=12, unseen_images=2, synthesize=False), progress=False)
    for r in load_dataset(out).records[:3]:
        (out / r.image).unlink()
    with pytest.raises(DatasetError, match="3 files listed in manifest.jsonl are missing: images/000000.png"):
        load_dataset(out)
    (out / "manifest.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(DatasetError, match="manifest.jsonl:1: malformed"):
        load_dataset(out)
    meta = json.loads((out / "dataset.json").read_text())
    meta["format_version"] = 99
    (out / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="format_version 99"):
        load_dataset(out)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_dataset(tmp_path / "nowhere")
