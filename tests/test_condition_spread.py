"""scripts/condition_spread.py: the bundled generator's conditioning keeps spoken colours apart."""

from conftest import load_script


def test_the_bundled_model_separates_the_spoken_colours(capsys):
    script = load_script("condition_spread")
    s = script.spread(script.load("bundled"))
    # The SEN tells the 8 colours apart, and the CA passes that on far above its own noise: a generator that
    # ignores the colour word (the 6,000-step CPU run: spread 1.4, sigma 0.99) fails this.
    assert s["emb_cos"] < 0.8
    assert s["mu_spread"] > 10 * s["sigma"]
    assert script.main(["bundled"]) == 0
    assert "| bundled |" in capsys.readouterr().out


def test_the_picture_has_one_upscaled_row_per_checkpoint_and_is_never_overwritten(tmp_path):
    import pytest
    import torch
    from PIL import Image

    script = load_script("condition_spread")
    rows = [torch.rand(8, 3, 8, 8) * 2 - 1, -torch.ones(8, 3, 8, 8)]
    path = tmp_path / "swap.png"
    script.draw_rows(rows, ["a\nb", "c"], path, scale=2, label_px=50)
    img = Image.open(path)
    assert img.size == (50 + 8 * 8 * 2, 2 * 8 * 2)
    assert img.getpixel((50, 16)) == (0, 0, 0)  # row 2 is black, to the right of the labels
    before = path.read_bytes()
    with pytest.raises(SystemExit):
        script.main(["bundled", "--picture", str(path)])
    assert path.read_bytes() == before
