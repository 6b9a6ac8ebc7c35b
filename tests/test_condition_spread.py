"""scripts/condition_spread.py: the bundled generator's conditioning keeps spoken colours apart."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "condition_spread.py"


def _script():
    spec = importlib.util.spec_from_file_location("condition_spread", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_bundled_model_separates_the_spoken_colours(capsys):
    s = _script().spread(None)
    # The SEN tells the 8 colours apart, and the CA passes that on far above its own noise: a generator that
    # ignores the colour word (the 6,000-step CPU run: spread 1.4, sigma 0.99) fails this.
    assert s["emb_cos"] < 0.8
    assert s["mu_spread"] > 10 * s["sigma"]
    assert _script().main(["bundled"]) == 0
    assert "| bundled |" in capsys.readouterr().out
