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


def test_grammar_v2_adds_phrasing_as_people_talk_and_keeps_v1(tmp_path, fake_fashion_mnist):
    from speechvision.data.captions import HELDOUT_TEMPLATES, SYNONYMS, TEMPLATES_V2

    assert TEMPLATES_V2[: len(TEMPLATES)] == TEMPLATES and not set(TEMPLATES_V2) & set(HELDOUT_TEMPLATES)
    assert caption(0, "trousers", 0, "red") == "a pair of red trousers"  # v1 unchanged
    for t in range(len(TEMPLATES_V2)):
        for g in FASHION_CLASSES:
            for s in range(len(SYNONYMS[g])):
                text = caption(t, g, s, "blue", "v2")
                assert "blue" in text and SYNONYMS[g][s].text.split()[0] in text
    assert caption(len(TEMPLATES) + 9, "sneaker", 0, "red", "v2") == "two red sneakers"
    v2 = load_dataset(build_spoken_fashion(tmp_path / "v2", fashion_mnist=fake_fashion_mnist, progress=False,
                                           config=BuildConfig(images=48, synthesize=False, grammar="v2")))
    texts = {c.text for r in v2.records for c in r.captions}
    assert any(t not in {caption(i, g, s, c) for i in range(len(TEMPLATES)) for g in FASHION_CLASSES
                         for s in range(len(SYNONYMS[g])) for c in COLOURS} for t in texts)
    assert json.loads((tmp_path / "v2" / "build.json").read_text())["grammar"] == "v2"
    v1 = build_spoken_fashion(tmp_path / "v1", fashion_mnist=fake_fashion_mnist, progress=False,
                              config=BuildConfig(images=48, synthesize=False))
    assert "grammar" not in json.loads((v1 / "build.json").read_text())  # earlier builds still resume
    with pytest.raises(DatasetError, match="--grammar v3"):
        build_spoken_fashion(tmp_path / "v3", fashion_mnist=fake_fashion_mnist, progress=False,
                             config=BuildConfig(images=48, synthesize=False, grammar="v3"))


def test_broad_voices_give_each_caption_its_own_few_voices(tmp_path, fake_fashion_mnist):
    from speechvision.core.tts import HELDOUT_VOICES, voice_pool

    ds = load_dataset(build_spoken_fashion(tmp_path / "b", fashion_mnist=fake_fashion_mnist, progress=False,
                                           config=BuildConfig(images=200, synthesize=False, voices="broad",
                                                              voices_per_caption=4)))
    by_text = {}
    for r in ds.split("train") + ds.split("val"):
        for c in r.captions:
            by_text.setdefault(c.text, set()).add(c.voice)
    assert max(len(v) for v in by_text.values()) <= 4
    used = {c.voice for r in ds.records for c in r.captions}
    assert not any(v.startswith("flite") for v in used)
    assert len(used & {v.id for v in voice_pool()}) > 20  # the pool is used
    train_used = {c.voice for r in ds.split("train") for c in r.captions}
    assert not train_used & {v.id for v in HELDOUT_VOICES}  # test-only voices stay in test
