import subprocess
import sys

import numpy as np
import soundfile as sf
from conftest import sine

from speechvision.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "speechvision.cli", *args], capture_output=True, text=True)


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
