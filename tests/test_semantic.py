import numpy as np
import pytest
import torch

from speechvision.metrics.semantic import attribute_accuracy, keyword_follow_rate, weak_judge_notes
from speechvision.s2igan.classifier import load_classifier, predict
from speechvision.s2igan.train_classifier import train_classifier


def test_attribute_accuracy_known_values():
    pred = {"garment": np.array([0, 1, 2, 3]), "colour": np.array([1, 1, 0, 0])}
    truth = {"garment": np.array([0, 1, 2, 0]), "colour": np.array([1, 0, 0, 0])}
    acc = attribute_accuracy(pred, truth)
    assert acc["garment_accuracy"] == 0.75 and acc["colour_accuracy"] == 0.75 and acc["all_accuracy"] == 0.5
    assert keyword_follow_rate([1, 2, 3], [1, 2, 0]) == pytest.approx(2 / 3)


def test_weak_judge_notes_name_each_attribute_the_judges_miss_on_real_images():
    sem = {"all": {"garment_accuracy": 0.3}, "real_images": {"garment_accuracy": 0.411, "colour_accuracy": 1.0,
                                                               "all_accuracy": 0.411, "images": 1000}}
    notes = weak_judge_notes(sem, "test_unseen")
    assert len(notes) == 1 and "garment of only 41% of the real test_unseen images" in notes[0]
    sem["real_images"]["garment_accuracy"] = 0.9
    assert weak_judge_notes(sem, "test") == [] and weak_judge_notes({}, "test") == []


def test_classifier_trains_and_reloads(tmp_path, tiny_spoken_fashion):
    acc = train_classifier(tiny_spoken_fashion, tmp_path / "cls", epochs=1, batch_size=8, progress=False)
    assert set(acc) == {"garment_accuracy", "colour_accuracy"}
    model, ck = load_classifier(tmp_path / "cls")
    out = predict(model, torch.rand(3, 3, 64, 64) * 2 - 1)  # generated 64 px images are resized to 32 px
    assert out["garment"].shape == (3,) and out["colour"].max() < 8
    assert ck["attributes"]["colour"][0] == "red"


def test_semantic_accuracy_of_the_bundled_model_on_a_tiny_build(tmp_path, tiny_spoken_fashion):
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.evaluate import semantic_accuracy
    from speechvision.s2igan.pipeline import S2IGANPipeline

    train_classifier(tiny_spoken_fashion, tmp_path / "cls", epochs=1, batch_size=8, progress=False)
    model, _ = load_classifier(tmp_path / "cls")
    ds = load_dataset(tiny_spoken_fashion)
    res = semantic_accuracy(S2IGANPipeline.load(), model, ds, "test")
    assert res["images"] == len(ds.split("test")) and 0 <= res["colour_accuracy"] <= 1
    held = semantic_accuracy(S2IGANPipeline.load(), model, ds, "test", heldout_voices=True)
    assert held["images"] <= res["images"]


def test_generator_report_has_clean_and_degraded_swaps_and_refuses_unknown_splits(tmp_path, tiny_spoken_fashion):
    from speechvision.data.manifest import DatasetError
    from speechvision.s2igan.evaluate import evaluate_generator

    train_classifier(tiny_spoken_fashion, tmp_path / "cls", epochs=1, batch_size=8, progress=False)
    rep = evaluate_generator(None, tiny_spoken_fashion, tmp_path / "cls", splits=("test",), limit=4,
                             work_dir=tmp_path / "swap")
    assert rep["cleanup"] and not rep["cascade"] and rep["test"]["images"] == 4
    for key in ("colour_swap", "colour_swap_degraded"):
        assert rep[key]["images"] == 160 and 0 <= rep[key]["colour_follows_word"] <= 1
    assert len(list((tmp_path / "swap" / "degraded").glob("swap-*.wav"))) == 160
    with pytest.raises(DatasetError, match="no split 'flite'"):
        evaluate_generator(None, tiny_spoken_fashion, tmp_path / "cls", splits=("flite",))


def test_recolour_redraws_a_colourised_image_in_another_palette_colour():
    from speechvision.data.captions import PALETTE
    from speechvision.data.spoken_fashion import colourise
    from speechvision.s2igan.classifier import classifier_input
    from speechvision.s2igan.train_classifier import recolour

    ink = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    names = list(PALETTE)
    drawn = {n: classifier_input(colourise(ink, PALETTE[n], 64)[None]) for n in names}
    rgb = {n: torch.tensor([PALETTE[n]], dtype=torch.float32) for n in names}
    for a, b in [("red", "green"), ("yellow", "black"), ("black", "pink"), ("blue", "blue")]:
        out = recolour(drawn[a], rgb[a], rgb[b])
        assert out.shape == drawn[b].shape
        assert (out - drawn[b]).abs().max() * 127.5 < 3.0  # uint8 rounding of the source, amplified at most ~2x
    assert (drawn["red"] - drawn["green"]).abs().max() * 127.5 > 100  # the check above can fail


def test_recoloured_judges_record_it_and_refuse_a_dataset_without_a_palette(tmp_path, tiny_spoken_fashion):
    import json
    import shutil

    from speechvision.data.manifest import DatasetError

    train_classifier(tiny_spoken_fashion, tmp_path / "cls", epochs=1, batch_size=8, recolour_p=0.5, progress=False)
    summary = json.loads((tmp_path / "cls" / "metrics.json").read_text())
    assert summary["recolour_p"] == 0.5 and set(summary["real_test"]) == {"garment_accuracy", "colour_accuracy"}
    data = tmp_path / "nopalette"
    shutil.copytree(tiny_spoken_fashion, data)
    meta = json.loads((data / "dataset.json").read_text())
    del meta["palette"]
    (data / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="palette"):
        train_classifier(data, tmp_path / "cls2", epochs=1, batch_size=8, recolour_p=0.5, progress=False)
