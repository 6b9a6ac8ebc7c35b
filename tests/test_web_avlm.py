"""The web page's AVLM tab (issue 20): the service on a tiny stack, then the tab in headless Chromium with a
face video, a video without a face and one without sound."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("gradio", reason="the web extra is not installed (pip install -e '.[web]')")
pytest.importorskip("transformers", reason="the expressive extra is not installed")
pytest.importorskip("dlib", reason="the avlm extra is not installed")
pytest.importorskip("av", reason="PyAV is not installed")

from conftest import free_port
from test_avlm_bundle import _tiny_stack
from test_web import ARTIFACTS, BROWSER_DIR, CHROMIUM, needs_browser

from speechvision.avlm.face import FaceError, read_video
from speechvision.avlm.media import write_video

RATE = 16000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from speechvision.avlm import bundle

    tmp = tmp_path_factory.mktemp("avlm-web")
    tokens, vocoder, dialogue = _tiny_stack(tmp)
    clips = bundle.demo_clips(tmp / "av", tmp / "clips", emotions=("angry",))
    bundle.export_stack(tokens, vocoder, dialogue, tmp / "stack", clips=clips)
    wave = (0.2 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    grey = np.full((25, 96, 96, 3), 128, np.uint8)
    write_video(tmp / "no-face.mp4", grey, 25, wave, RATE)
    write_video(tmp / "no-sound.mp4", read_video(clips[0]["video"]), 25)
    return {"dir": tmp / "stack", "clip": clips[0]["video"], "no_face": tmp / "no-face.mp4",
            "no_sound": tmp / "no-sound.mp4"}


def test_service_answers_a_face_video_and_names_each_bad_video(stack, tmp_path):
    from speechvision.web_avlm import EmotionService, load_emotion_service

    service = EmotionService(stack["dir"])
    r = service.respond(stack["clip"], seed=0)
    assert abs(sum(r["probabilities"].values()) - 1) < 1e-3 and r["emotion"] in r["probabilities"]
    assert r["face_frames"] == r["frames"] == 25 and r["reply"].is_file() and r["picture"].stat().st_size > 5000
    with pytest.raises(FaceError, match="no face found in any of 25 frames"):
        service.respond(stack["no_face"])
    with pytest.raises(FaceError, match="no-sound.mp4: the video has no sound"):
        service.respond(stack["no_sound"])
    with pytest.raises(FaceError, match="upload or record"):
        service.respond(None)
    # a missing bundled stack turns the tab off with a reason; a bad --avlm-stack is an error
    from speechvision.avlm.model import AVLMError

    with pytest.raises(AVLMError, match="bundle.json: missing"):
        load_emotion_service(tmp_path)


@pytest.fixture(scope="module")
def avlm_server(stack):
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "serve-avlm.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "speechvision", "serve", "--port", str(port), "--avlm-stack",
                             str(stack["dir"])], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"server did not start; see {ARTIFACTS / 'serve-avlm.log'}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _drive(url, video, out) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["node", str(BROWSER_DIR / "avlm.mjs"), url, str(video), str(out)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "CHROMIUM": CHROMIUM})
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@needs_browser
def test_browser_face_video_gets_emotions_and_a_spoken_reply(avlm_server, stack):
    import soundfile as sf

    res = _drive(avlm_server, stack["clip"], ARTIFACTS / "browser-avlm")
    assert "heard and saw" in res["status"] and "SYNTHETIC" in res["status"], res
    assert all(e in res["labels"] for e in ("neutral", "happy", "angry", "sad")), res
    wave, rate = sf.read(res["reply"])
    assert rate == RATE and len(wave) > 0


@needs_browser
@pytest.mark.parametrize("kind, message", [("no_face", "no face found in any of 25 frames"),
                                           ("no_sound", "no-sound.mp4: the video has no sound")])
def test_browser_bad_videos_show_one_line_errors_and_the_server_keeps_serving(avlm_server, stack, kind, message):
    res = _drive(avlm_server, stack[kind], ARTIFACTS / f"browser-avlm-{kind}")
    assert res["status"].startswith("Error:") and message in res["status"], res
    assert "Traceback" not in res["status"] and res["reply"] is None
