import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import sine

from speechvision.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "speechvision.cli", *args], check=False, capture_output=True,
                          text=True)


def test_help_has_examples():
    out = run("--help")
    assert out.returncode == 0 and "examples:" in out.stdout and "speechvision data spoken-fashion" in out.stdout


def test_usage_error_exit_2():
    out = run("data", "spoken-fashion")
    assert out.returncode == 2 and "usage error" in out.stderr and "Traceback" not in out.stderr


def test_bad_wav_one_line_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    out = run("features", str(bad))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and str(bad) in out.stderr


def test_features_and_config(tmp_path, capsys):
    good = tmp_path / "good.wav"
    sf.write(good, sine(1.0), 22050)
    assert main(["features", str(good)]) == 0
    assert "(101, 40)" in capsys.readouterr().out
    assert main(["config", "--preset", "cub", "--set", "sen.epochs=3"]) == 0
    assert '"epochs": 3' in capsys.readouterr().out
    assert main(["config", "--set", "sen.bogus=1"]) == 1
    assert "unknown key 'bogus'" in capsys.readouterr().err


def test_data_build_cli(tmp_path, fake_fashion_mnist, capsys):
    assert main(["data", "spoken-fashion", "--out", str(tmp_path / "sf"), "--fashion-mnist", str(fake_fashion_mnist),
                 "--images", "12", "--unseen-images", "8", "--no-audio"]) == 0
    assert "train 10" in capsys.readouterr().out
    assert main(["data", "spoken-fashion", "--out", str(tmp_path / "x"), "--fashion-mnist", str(tmp_path)]) == 1
    assert "dataset-fashion-mnist" in capsys.readouterr().err


def test_help_imports_no_torch():
    """The option lists live in modules that import torch: they are read only for the command in use."""
    code = ("import sys; from speechvision.cli import build_parser; build_parser().format_help(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


AV = ["--av", "a", "--tokens", "t", "--lm", "l", "--out", "o"]


def test_option_lists_come_from_the_library(capsys):
    from speechvision.avlm.data.spoken_emotion import EMOTIONS
    from speechvision.avlm.model import FUSIONS, AVLMConfig
    from speechvision.avlm.visual import ENCODERS
    from speechvision.cli import build_parser
    from speechvision.metrics import GENERATOR_METRICS
    from speechvision.s2igan.config import PRESETS

    parser = build_parser()
    args = parser.parse_args(["avlm", "train", *AV])
    assert (args.fusion, args.visual_encoder) == (AVLMConfig.fusion, AVLMConfig.visual_encoder)
    assert parser.parse_args(["avlm", "train", *AV, "--fusion", "qformer"]).fusion == "perceiver"  # legacy name
    assert tuple(parser.parse_args(["avlm", "compare", *AV, "--fusions", "qformer", "concat"]).fusions) == (
        "perceiver", "concat")
    assert tuple(parser.parse_args(["avlm", "compare", *AV]).fusions) == FUSIONS
    respond = ["avlm", "respond", "--model", "m", "--tokens", "t", "--vocoder", "v", "--video", "v", "--audio", "a",
               "--out", "o", "--emotion"]
    assert [parser.parse_args([*respond, e]).emotion for e in EMOTIONS] == list(EMOTIONS)
    assert parser.parse_args(["evaluate", "--data", "d"]).metrics == ",".join(GENERATOR_METRICS)
    with pytest.raises(SystemExit):
        parser.parse_args(["avlm", "train", "--help"])
    text = capsys.readouterr().out
    assert "{" + ",".join(FUSIONS) + "}" in text and "{" + ",".join(ENCODERS) + "}" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["config", "--help"])
    assert f"({', '.join(PRESETS)})" in " ".join(capsys.readouterr().out.split())


def test_train_gan_save_inputs_is_one_library_call(tmp_path, monkeypatch, capsys):
    from speechvision.s2igan import export

    calls = []

    def fake_save(data, sen, cfg, out):
        calls.append((data, sen, cfg))
        out.write_bytes(b"x" * 2_000_000)
        return out

    monkeypatch.setattr(export, "save_gan_inputs", fake_save)
    out = tmp_path / "inputs.safetensors"
    assert main(["train", "gan", "--data", "d", "--sen", "s", "--out", "o", "--save-inputs", str(out), "--no-rs",
                 "--set", "gan.iterations=3"]) == 0
    (data, sen, cfg), = calls
    assert (str(data), str(sen), cfg.gan.rs, cfg.gan.iterations) == ("d", "s", False, 3)
    assert capsys.readouterr().out.strip() == f"wrote {out} (2.0 MB)"


def test_speech_lm_config(tmp_path):
    from speechvision.avlm.lm import SpeechLMConfig, speech_lm_config

    assert speech_lm_config() == SpeechLMConfig()
    cfg = speech_lm_config(hidden_size=128, num_layers=2)
    assert (cfg.hidden_size, cfg.num_layers, cfg.intermediate_size, cfg.backbone, cfg.offset) == (128, 2, 352, None, 0)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "vocab_size": 1000}')
    cfg = speech_lm_config(backbone=tmp_path)
    assert (cfg.backbone, cfg.offset) == (str(tmp_path), 1000)


def test_every_declared_command_builds_its_help(capsys):
    """Each command declared with ``@command``/``declare`` is reachable: its options and sub-commands build and
    its ``--help`` names it (an ``order`` that misses a declared sub-command would raise here)."""
    from speechvision.cli import build_parser
    from speechvision.cli.common import COMMANDS

    assert len(COMMANDS) > 30
    for path in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*path, "--help"])
        assert exit_.value.code == 0, path
        assert f"usage: {' '.join(('speechvision', *path))} " in capsys.readouterr().out, path


def test_no_progress_reaches_the_library_and_only_commands_with_bars_take_it(monkeypatch):
    """``--no-progress`` is added by the declaration (``progress=True``) and reaches the library call; every
    handler that reads it is declared so (else it would fail on ``args.no_progress``)."""
    import inspect

    from speechvision.avlm import dialogue
    from speechvision.cli import build_parser
    from speechvision.cli.common import COMMANDS

    calls = []
    monkeypatch.setattr(dialogue, "train_dialogue", lambda *a, **kw: calls.append(kw["progress"]) or Path("o"))
    assert main(["avlm", "train", *AV, "--task", "dialogue", "--no-progress"]) == 0
    assert main(["avlm", "train", *AV, "--task", "dialogue"]) == 0
    assert calls == [False, True]
    with pytest.raises(SystemExit) as exit_:  # recognition draws no bars
        build_parser().parse_args(["avlm", "recognize", "--model", "m", "--tokens", "t", "--video", "v",
                                   "--audio", "a", "--no-progress"])
    assert exit_.value.code == 2
    readers = {path for path, cmd in COMMANDS.items()
               if cmd.handler is not None and any(call in inspect.getsource(cmd.handler)
                                                  for call in ("shows_progress(args)", "schedule(args)"))}
    assert {("pipeline",), ("train", "gan"), ("avlm", "evaluate-dialogue"), ("data", "spoken-fashion"),
            ("data", "speech-augment"), ("evaluate",), ("evaluate", "sen"), ("train", "classifier")} <= readers
    assert all(COMMANDS[path].progress for path in readers), [p for p in readers if not COMMANDS[p].progress]


def test_no_progress_given_before_or_after_a_sub_command_is_kept():
    """``evaluate --no-progress sen`` and ``evaluate sen --no-progress`` both turn the bars off (argparse would
    let the sub-command's own default overwrite the parent's flag)."""
    from speechvision.cli import build_parser
    from speechvision.cli.common import shows_progress

    sen = ["--checkpoint", "c", "--data", "d", "--out", "o.json"]
    parse = build_parser().parse_args
    assert not shows_progress(parse(["evaluate", "--no-progress", "sen", *sen]))
    assert not shows_progress(parse(["evaluate", "sen", *sen, "--no-progress"]))
    assert shows_progress(parse(["evaluate", "sen", *sen]))
    assert shows_progress(parse(["evaluate", "--checkpoint", "c", "--data", "d", "--out", "o"]))
    assert not shows_progress(parse(["evaluate", "--checkpoint", "c", "--data", "d", "--out", "o", "--no-progress"]))
