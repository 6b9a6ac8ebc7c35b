"""`speechvision serve`: the service without a browser, then the page in headless Chromium.

The browser tests need Chromium (/usr/bin/chromium, Debian package `chromium`), Node.js and
tests/browser/node_modules (`make test` installs all three when it can); without them they are
skipped with the reason.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio", reason="the web extra is not installed (pip install -e '.[web]')")

from conftest import free_port  # noqa: E402

from speechvision.web import SpeechToImageService, WebInputError, _message, load_test  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
EXAMPLE = ROOT / "src" / "speechvision" / "assets" / "examples" / "red-sneaker.flac"


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)"
    if shutil.which("node") is None:
        return "no Node.js (apt-get install -y nodejs npm)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core missing (npm install --prefix tests/browser)"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=f"browser test skipped: {_browser_missing()}")


@pytest.fixture(scope="module")
def service():
    return SpeechToImageService()


def test_service_generates_every_stage_and_n_images(service):
    images, stages = service.speech_to_images(EXAMPLE, seed=3, n=3)
    assert len(images) == 3 and images[0].shape == (64, 64, 3) and images[0].dtype == np.uint8
    assert [s.shape[0] for s in stages] == sorted(s.shape[0] for s in stages) and stages[-1].shape[0] == 64
    assert np.array_equal(stages[-1], images[0])  # the last stage is the first image
    again, _ = service.speech_to_images(EXAMPLE, seed=3, n=1)
    assert np.array_equal(again[0], images[0])  # per-sample seeds: image 0 does not depend on n
    assert len(service.speech_to_images(EXAMPLE, n=99)[0]) == 8  # clamped to the page's maximum


def test_service_colour_swap_and_errors(service):
    pairs = service.colour_swap("this is a red coat", ["blue", "green"], seed=1)
    assert [text for _, text in pairs] == ["this is a blue coat", "this is a green coat"]
    assert not np.array_equal(pairs[0][0], pairs[1][0])
    with pytest.raises(WebInputError, match="names no colour"):
        service.colour_swap("this is a coat", ["blue"])
    with pytest.raises(WebInputError, match="type a description"):
        service.speak("  ")
    from speechvision.core.audio import AudioError

    msg = _message(AudioError("/tmp/gradio/abc123/x.wav: not a readable audio file"))
    assert msg == "**Error:** x.wav: not a readable audio file"
    assert "internal problem (KeyError)" in _message(KeyError("boom"))


def test_service_refuses_bad_seeds_and_long_audio_in_one_line(service, tmp_path):
    """Seeds outside the generator's range and audio over the limit: one line each, no CLI option named."""
    import soundfile as sf
    from conftest import sine

    for seed in (1e30, -1, 2.5, float("nan")):
        with pytest.raises(WebInputError) as e:
            service.speech_to_images(EXAMPLE, seed=seed, n=2)
        msg = _message(e.value)
        assert msg.startswith("**Error:** seed") and "\n" not in msg and "internal problem" not in msg, msg
    assert len(service.speech_to_images(EXAMPLE, seed=None, n=1)[0]) == 1  # an empty box is seed 0
    long = tmp_path / "long.wav"
    sf.write(long, sine(31.0, 16000), 16000)
    with pytest.raises(WebInputError) as e:
        service.speech_to_images(long)
    msg = _message(e.value)
    assert "long.wav" in msg and "31.0 s" in msg and "30 s" in msg and "--" not in msg, msg


def test_service_retrieves_top5_real_images(tmp_path, tiny_spoken_fashion):
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.config import apply_overrides, preset
    from speechvision.s2igan.train_sen import train_sen

    cfg = apply_overrides(preset("spoken-fashion"), ["sen.speech.rnn_hidden=16", "sen.speech.attention_dim=8",
                                                     "sen.speech.embedding_dim=32", "sen.image.embedding_dim=32",
                                                     "sen.batch_size=8", "sen.epochs=1"])
    train_sen(tiny_spoken_fashion, tmp_path / "sen", cfg, progress=False)
    svc = SpeechToImageService(data=tiny_spoken_fashion, sen_checkpoint=tmp_path / "sen")
    wav = load_dataset(tiny_spoken_fashion).split("test")[0].captions[0].audio
    hits = svc.retrieve(tiny_spoken_fashion / wav)
    assert len(hits) == 5 and hits[0][0].shape == (64, 64, 3)
    scores = [float(caption.split()[0]) for _, caption in hits]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(WebInputError, match="needs --sen"):
        SpeechToImageService(data=tiny_spoken_fashion)


@pytest.fixture(scope="module")
def server():
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "speechvision", "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"server did not start; see {ARTIFACTS / 'serve.log'}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _drive(url: str, upload: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["node", str(BROWSER_DIR / "page.mjs"), url, str(upload), str(out)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "CHROMIUM": CHROMIUM})
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@needs_browser
def test_browser_bad_file_shows_error_and_server_keeps_serving(server, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    res = _drive(server, bad, ARTIFACTS / "browser-bad-file")
    assert res["images"] == 0
    assert res["status"].startswith("Error: notes.wav: not a readable audio file"), res
    assert "Traceback" not in res["status"]


@needs_browser
def test_browser_upload_wav_gets_an_image(server, tmp_path):
    import soundfile as sf

    wav = tmp_path / "query.wav"  # a WAV, as a user would upload (the example is FLAC)
    audio, rate = sf.read(EXAMPLE)
    sf.write(wav, audio, rate)
    res = _drive(server, wav, ARTIFACTS / "browser-upload")
    assert res["images"] == 4, res  # the page's default "n images"
    from PIL import Image

    with Image.open(res["image"]) as im:
        im.load()
        assert im.size == (64, 64) and im.mode == "RGB"
    assert (ARTIFACTS / "browser-upload" / "page.png").stat().st_size > 10_000


def test_twenty_concurrent_requests_all_succeed(server):
    res = load_test(server, EXAMPLE, requests=20)
    assert res["ok"] == 20 and res["failed"] == 0, res
