"""The evaluation suite: each metric against a reference or a case with a known answer, plus the
disturbance and invariance checks of the FID paper and clean-fid (seeded, small data)."""

import json
import shutil

import numpy as np
import pytest
import scipy.linalg
import torch

from speechvision.metrics import parse_metrics
from speechvision.metrics.fid import Statistics, feature_statistics, fid_from_features, frechet_distance
from speechvision.metrics.generation_map import generation_map, select_queries
from speechvision.metrics.inception_score import inception_score


def reference_fid(x, y):
    """The pytorch-fid formula with scipy's sqrtm, float64."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize("n,d", [(300, 16), (500, 64)])
def test_frechet_distance_matches_scipy_reference(n, d):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    y = rng.normal(loc=0.3, size=(n, d)) @ rng.normal(size=(d, d))
    assert fid_from_features(x, y) == pytest.approx(reference_fid(x, y), rel=1e-6)
    assert abs(fid_from_features(x, x)) < 1e-6


def test_statistics_round_trip_and_bad_input(tmp_path):
    stats = feature_statistics(np.random.default_rng(0).normal(size=(10, 4)))
    stats.save(tmp_path / "s.safetensors")
    back = Statistics.load(tmp_path / "s.safetensors")
    assert back.n == 10 and np.array_equal(back.sigma, stats.sigma)
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(np.full((3, 4), np.nan))


def test_inception_score_bounds():
    k = 10
    constant = np.tile(np.eye(k)[3], (100, 1))  # every image gets the same (confident) posterior
    assert inception_score(constant)[0] == pytest.approx(1.0)
    uniform = np.eye(k)[np.arange(200) % k]  # confident and uniform over classes, in every split
    mean, std = inception_score(uniform)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-9)
    blurry = np.full((100, k), 1 / k)  # uncertain posteriors: IS 1 as well
    assert inception_score(blurry)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="probabilities"):
        inception_score(np.ones((20, 3)))
    with pytest.raises(ValueError, match="at least 10"):
        inception_score(np.eye(3)[:3])


def test_generation_map_hand_built_case():
    # Gallery classes [1, 0, 0, 1].
    # Query 0 (class 0) ranks g0 (1), g1 (0), g2 (0), g3 (1): AP = (1/2 + 2/3) / 2 = 7/12; not in top 1, in top 2.
    # Query 1 (class 1) ranks g3 (1), g2 (0), g1 (0), g0 (1): AP = (1/1 + 2/4) / 2 = 3/4; in top 1.
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    g = np.array([[1.0, 0.05], [0.9, 0.3], [0.8, 0.5], [0.0, 1.0]])
    res = generation_map(q, np.array([0, 1]), g, np.array([1, 0, 0, 1]), ks=(1, 2))
    assert res["mAP"] == pytest.approx((7 / 12 + 0.75) / 2)
    assert res["R@1"] == pytest.approx(0.5) and res["R@2"] == pytest.approx(1.0)
    assert res["queries"] == 2 and res["gallery"] == 4


def test_select_queries_two_per_class_deterministic():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    a, b = select_queries(labels, 2, seed=1), select_queries(labels, 2, seed=1)
    assert np.array_equal(a, b)
    counts = np.bincount(labels[a])
    assert counts.tolist() == [2, 2, 2, 1]  # class 3 has a single image
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics("fid,bleu")


# ---- FID with the real Inception on images (the disturbance tests of Heusel et al. 2017) --------

@pytest.fixture(scope="module")
def inception():
    from speechvision.core.inception import InceptionFeatures

    return InceptionFeatures()


@pytest.fixture(scope="module")
def real_images(tiny_spoken_fashion):
    from speechvision.data.manifest import load_dataset
    from speechvision.metrics.features import load_images_uint8

    ds = load_dataset(tiny_spoken_fashion)
    train = load_images_uint8([ds.path(r.image) for r in ds.split("train")][:24])
    test = load_images_uint8([ds.path(r.image) for r in ds.split("test") + ds.split("val")][:24])
    return train, test


def _feats(model, images, batch_size=12):
    from speechvision.metrics.features import inception_features

    return inception_features(lambda a, b: images[a:b], len(images), model=model, batch_size=batch_size, progress=False)


def _noisy(images, std, seed=0):
    noise = np.random.default_rng(seed).normal(scale=std, size=images.shape)
    return np.clip(images + noise, 0, 255).round().astype(np.uint8)


def _blurred(images, sigma):
    from PIL import Image, ImageFilter

    return np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(sigma))) for im in images])


def test_fid_grows_with_noise_and_blur_and_is_batch_size_invariant(inception, real_images):
    train, _ = real_images
    ref = _feats(inception, train)
    noise_fid = [fid_from_features(ref, _feats(inception, _noisy(train, s))) for s in (8, 32, 96)]
    blur_fid = [fid_from_features(ref, _feats(inception, _blurred(train, s))) for s in (0.7, 1.5, 3.0)]
    assert all(a < b for a, b in zip(noise_fid, noise_fid[1:])), noise_fid
    assert all(a < b for a, b in zip(blur_fid, blur_fid[1:])), blur_fid
    assert noise_fid[0] > 0 and blur_fid[0] > 0
    # Same images, other batch sizes: the same FID to 1e-6.
    other = _noisy(train, 32)
    f_a = fid_from_features(ref, _feats(inception, other, batch_size=12))
    f_b = fid_from_features(_feats(inception, train, batch_size=5), _feats(inception, other, batch_size=24))
    assert abs(f_a - f_b) < 1e-6 * max(1.0, f_a)
    assert abs(f_a - noise_fid[1]) < 1e-6 * max(1.0, f_a)  # deterministic across calls


def test_fid_real_vs_real_far_below_real_vs_noise(inception, real_images):
    train, test = real_images
    ref = _feats(inception, train)
    noise = np.random.default_rng(1).integers(0, 256, size=test.shape, dtype=np.uint8)
    real_real = fid_from_features(ref, _feats(inception, test))
    real_noise = fid_from_features(ref, _feats(inception, noise))
    assert real_real < 0.5 * real_noise, (real_real, real_noise)


# ---- the command -------------------------------------------------------------------------------

def test_evaluate_command_end_to_end_and_folder_fid_agrees(tmp_path, tiny_spoken_fashion):
    from speechvision.cli import main
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.train_classifier import train_classifier

    train_classifier(tiny_spoken_fashion, tmp_path / "cls", epochs=1, batch_size=8, progress=False)
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(tiny_spoken_fashion), "--classifier", str(tmp_path / "cls"),
                 "--map-captions", "2", "--out", str(out), "--save-images"]) == 0
    rep = json.loads((out / "metrics.json").read_text())
    ds = load_dataset(tiny_spoken_fashion)
    n_test = len(ds.split("test"))
    m = rep["metrics"]
    assert m["fid"]["fake_images"] == n_test and m["fid"]["value"] > 0
    assert m["fid_real_train_baseline"]["value"] > 0
    assert 1.0 <= m["is"]["mean"] <= m["is"]["classes"]
    assert 0.0 <= m["map"]["mAP"] <= 1.0 and m["map"]["gallery"] == 2 * m["map"]["queries"]
    assert m["semantic"]["all"]["images"] == n_test
    assert (out / "grid.png").is_file() and "| bundled | " in (out / "table.md").read_text()
    assert len(list((out / "generated").glob("*.png"))) == n_test
    # pytorch-fid style: the same images as folders give the same FID.
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    for r in ds.split("test"):
        shutil.copy(ds.path(r.image), real_dir / (r.id + ".png"))
    assert main(["evaluate", "--real", str(real_dir), "--fake", str(out / "generated"), "--out", str(tmp_path / "f")]) == 0
    folder = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert folder["fid"] == pytest.approx(m["fid"]["value"], rel=1e-6)


def test_evaluate_errors_are_one_line(tmp_path, tiny_spoken_fashion, capsys):
    from speechvision.cli import main

    assert main(["evaluate", "--data", str(tiny_spoken_fashion), "--metrics", "is"]) == 1
    assert "need --classifier" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    assert main(["evaluate", "--real", str(tmp_path / "bad"), "--fake", str(tmp_path / "bad")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("speechvision")]
    assert len(errors) == 1 and "x.png: not a readable image" in errors[0]
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--data", str(tiny_spoken_fashion), "--metrics", "bleu"])
    assert e.value.code == 2


# ---- the pytorch-fid weights format ---------------------------------------------------------------

def test_pytorch_fid_layout_matches_the_torchscript_inception(tmp_path, inception):
    """Our FIDInceptionV3 with the TorchScript's weights gives the TorchScript's features, and a
    state dict in pytorch-fid's layout loads through --inception-weights (pytorch-fid's input mapping)."""
    from speechvision.core.inception import InceptionFeatures, WeightsError, from_torchscript

    model = from_torchscript(inception.net)
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        ref = inception._pool(x)
        ours = model(x)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    torch.save(model.state_dict(), tmp_path / "pt_inception.pth")
    loaded = InceptionFeatures(tmp_path / "pt_inception.pth")
    assert loaded.pytorch_fid
    imgs = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(loaded(imgs), inception(imgs), rtol=0.05, atol=0.05)  # inputs mapped x/127.5-1 vs x/128-1
    (tmp_path / "junk.pth").write_bytes(b"not weights")
    with pytest.raises(WeightsError, match="neither a TorchScript"):
        InceptionFeatures(tmp_path / "junk.pth")


def test_inception_score_with_the_imagenet_inception(tmp_path, tiny_spoken_fashion, inception):
    """--is-model inception takes the posteriors from the 1008-class layer of pytorch-fid's weights;
    the TorchScript (no classifier layer) is refused with a clear error."""
    from speechvision.core.inception import WeightsError, from_torchscript
    from speechvision.s2igan.evaluate import evaluate

    model = from_torchscript(inception.net)
    torch.nn.init.normal_(model.fc.weight, std=0.05)  # stands in for the real classifier layer
    torch.save(model.state_dict(), tmp_path / "pt_inception.pth")
    rep = evaluate(None, tiny_spoken_fashion, metrics=["is"], is_model="inception", limit=12,
                   inception_weights=tmp_path / "pt_inception.pth", progress=False)
    assert rep["metrics"]["is"]["classes"] == 1008 and 1.0 <= rep["metrics"]["is"]["mean"] <= 1008
    with pytest.raises(WeightsError, match="pytorch-fid's weights"):
        evaluate(None, tiny_spoken_fashion, metrics=["is"], is_model="inception", limit=12, progress=False)
