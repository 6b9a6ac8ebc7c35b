import json

import pytest

from speechvision.s2igan.config import PRESETS, ConfigError, apply_overrides, config_from_dict, preset


def test_presets_and_round_trip():
    for name in ("spoken-fashion", "cub", "oxford", "flickr8k"):
        cfg = preset(name)
        again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
    assert preset("flickr8k").sen.distinctive_loss is False
    assert set(PRESETS) >= {"spoken-fashion", "cub", "oxford", "flickr8k"}


def test_overrides_typed():
    cfg = apply_overrides(preset("cub"), ["sen.epochs=7", "sen.lr=1e-4", "sen.matching_loss=false",
                                          "sen.betas=0.9,0.99", "sen.speech.rnn_hidden=64"])
    assert cfg.sen.epochs == 7 and cfg.sen.lr == 1e-4 and cfg.sen.matching_loss is False
    assert cfg.sen.betas == (0.9, 0.99) and cfg.sen.speech.rnn_hidden == 64


@pytest.mark.parametrize("bad", ["sen.nope=1", "sen.epochs=abc", "nothing", "zzz.epochs=1", "sen.matching_loss=maybe"])
def test_bad_overrides(bad):
    with pytest.raises(ConfigError):
        apply_overrides(preset("cub"), [bad])
    with pytest.raises(ConfigError):
        preset("imagenet")
