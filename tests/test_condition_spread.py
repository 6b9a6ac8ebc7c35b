"""scripts/condition_spread.py: the bundled generator's conditioning keeps spoken colours apart."""

from conftest import load_script


def test_the_bundled_model_separates_the_spoken_colours(capsys):
    script = load_script("condition_spread")
    s = script.spread(None)
    # The SEN tells the 8 colours apart, and the CA passes that on far above its own noise: a generator that
    # ignores the colour word (the 6,000-step CPU run: spread 1.4, sigma 0.99) fails this.
    assert s["emb_cos"] < 0.8
    assert s["mu_spread"] > 10 * s["sigma"]
    assert script.main(["bundled"]) == 0
    assert "| bundled |" in capsys.readouterr().out
