import torch
from PIL import Image

from speechvision.cli import main
from speechvision.demo import EXAMPLE_TEXTS, EXAMPLES
from speechvision.s2igan.pipeline import BUNDLED, S2IGANPipeline


def test_bundle_is_small_weights_only_and_loads():
    assert BUNDLED.is_file() and BUNDLED.stat().st_size < 25e6
    raw = torch.load(BUNDLED, weights_only=True)  # no arbitrary pickle
    assert raw["kind"] == "s2igan" and raw["config"]["gan"]["generator"]["base_size_px"] == 16
    pipe = S2IGANPipeline.load()
    a = pipe.speech_to_images([EXAMPLES / "red-sneaker.flac"], seed=3)[-1]
    b = pipe.speech_to_images([EXAMPLES / "red-sneaker.flac"], seed=3)[-1]
    assert a.shape == (1, 3, 64, 64) and torch.equal(a, b)


def test_demo_and_say_write_images(tmp_path, capsys):
    assert sum(f.stat().st_size for f in EXAMPLES.glob("*.flac")) < 600_000
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    grid = Image.open(tmp_path / "demo" / "demo-grid.png")
    assert grid.size == (4 * 64, len(EXAMPLE_TEXTS) * 64)
    assert Image.open(tmp_path / "demo" / "colour-swap.png").size == (8 * 64, 64)
    assert main(["say", "a blue bag", "--out", str(tmp_path / "bag.png")]) == 0
    assert Image.open(tmp_path / "bag.png").size == (64, 64)
    assert main(["generate", "--speech", str(EXAMPLES / "green-bag.flac"), "--out", str(tmp_path / "g"),
                 "--n-per-speech", "2", "--all-stages"]) == 0
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names[:2] == ["green-bag-seed0000-stage1.png", "green-bag-seed0000-stage2.png"] and len(names) == 6
    assert Image.open(tmp_path / "g" / "green-bag-seed0000-stage1.png").size == (16, 16)
