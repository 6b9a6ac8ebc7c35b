"""``speechvision serve``: a Gradio page for the main job (speak, see the image).

* Tab "Speak": audio from the microphone or an uploaded file (anything the audio front-end reads),
  or a typed description spoken by the bundled Piper voice; a seed and "n images" (1-8). Shows the
  final images, every stage of the densely-stacked generator for the first image (low to high
  resolution), and the top-5 real images the SEN retrieves when the server has a dataset.
* Tab "Colour keyword": one sentence, colours from the palette; the same sentence is spoken with
  each colour word and generated with the same seed (the paper's keyword experiment).
* Tab "Emotion and reply (AVLM)": a face video with speech in, the emotion and a spoken reply out
  (:mod:`speechvision.web_avlm`).

The model is loaded once and shared; requests queue with bounded concurrency. Bad input (not audio,
silence, too long, empty text) comes back as a readable one-line message in the page's status box,
never a stack trace, and the server keeps serving. Offline: Gradio analytics are off and there is no
share link.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechvision.core.errors import SpeechvisionError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

MAX_IMAGES = 8
RETRIEVED = 5
MAX_SPEECH_S = 30.0  # the longest spoken description the page takes (the audio front-end's default cap)


class WebInputError(SpeechvisionError, ValueError):
    """A request the page cannot serve (no audio, no text, no colour word)."""


@dataclass
class ServeConfig:
    """Attributes: host, port, concurrency (requests run at once), max_queue (waiting requests)."""

    host: str = "127.0.0.1"
    port: int = 7860
    concurrency: int = 2
    max_queue: int = 64


class SpeechToImageService:
    """The shared model behind the page: a pipeline, an optional retrieval index and the TTS voice.

    Every method returns plain numpy images (H, W, 3) uint8, so the service is testable without a
    browser. Torch runs one request at a time (a lock): concurrent requests are queued, not interleaved.
    """

    def __init__(self, checkpoint: str | Path | None = None, *, data: str | Path | None = None,
                 sen_checkpoint: str | Path | None = None, split: str = "test"):
        from speechvision.s2igan.pipeline import S2IGANPipeline

        self.pipe = S2IGANPipeline.load(checkpoint)
        self.index = None
        if data is not None:
            if sen_checkpoint is None:
                raise WebInputError("retrieval needs --sen RUN (a SEN run folder) together with --data DIR")
            from speechvision.s2igan.retrieval import RetrievalIndex

            self.index = RetrievalIndex(sen_checkpoint, data, split=split)
        self._lock = threading.Lock()
        self._tmp = Path(tempfile.mkdtemp(prefix="speechvision-serve-"))

    def speak(self, text: str) -> Path:
        """Text -> a WAV spoken by the default Piper voice (a temporary file)."""
        from speechvision.core.tts import DEFAULT_VOICE, synthesize, write_wav_atomic

        text = (text or "").strip()
        if not text:
            raise WebInputError("type a description or give an audio file")
        if len(text) > 300:
            raise WebInputError("the description is too long (at most 300 characters)")
        wav, rate = synthesize(text, DEFAULT_VOICE)
        if len(wav) / rate > MAX_SPEECH_S:
            raise WebInputError(f"the description speaks for {len(wav) / rate:.1f} s, over the {MAX_SPEECH_S:.0f} s "
                                "limit; shorten it")
        path = Path(tempfile.mkstemp(suffix=".wav", dir=self._tmp)[1])
        write_wav_atomic(path, wav, rate)
        return path

    def speech_to_images(self, wav: str | Path, *, seed: int = 0, n: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One spoken description -> (n final images, every stage of the first image).

        Raises:
            WebInputError: a seed that is not a whole number in the generator's range, or audio longer than
                :data:`MAX_SPEECH_S` (the limit in seconds, no command-line option).
            AudioError: other bad audio.
        """
        from speechvision.core.images import to_uint8

        n = int(min(max(int(n or 1), 1), MAX_IMAGES))
        seed = page_seed(seed, n)
        check_duration(wav)
        with self._lock:
            stages = self.pipe.speech_to_images([wav], seed=seed, n_per_speech=n)
        return list(to_uint8(stages[-1])), [to_uint8(s[:1])[0] for s in stages]

    def colour_swap(self, sentence: str, colours: list[str], *, seed: int = 0) -> list[tuple[np.ndarray, str]]:
        """The sentence spoken once per colour (its colour word replaced), same seed -> (image, colour)."""
        from speechvision.data.captions import COLOURS

        words = (sentence or "").strip().lower().split()
        slots = [i for i, w in enumerate(words) if w in COLOURS]
        if not slots:
            raise WebInputError(f"the sentence names no colour of the palette ({', '.join(COLOURS)})")
        if not colours:
            raise WebInputError("choose at least one colour")
        out = []
        for colour in colours:
            text = " ".join(colour if i == slots[0] else w for i, w in enumerate(words))
            images, _ = self.speech_to_images(self.speak(text), seed=seed, n=1)
            out.append((images[0], text))
        return out

    def retrieve(self, wav: str | Path) -> list[tuple[np.ndarray, str]]:
        """Top-5 real images (H, W, 3) uint8 with "score class" captions for a spoken query; [] without a dataset."""
        if self.index is None:
            return []
        from speechvision.metrics.features import load_images_uint8

        with self._lock:
            hits = self.index.query(wav, RETRIEVED)
        images = load_images_uint8([self.index.dataset.path(r.image) for _, r in hits], same_size=False)
        return [(img, f"{score:.3f} {r.class_name}") for img, (score, r) in zip(images, hits)]


def page_seed(seed, n: int = 1) -> int:
    """The page's seed box as an int (empty: 0).

    Raises:
        WebInputError: not a whole number, or outside the generator's range for ``n`` images.
    """
    from speechvision.core.errors import InputError, check_seed_range

    try:
        return check_seed_range(0 if seed is None or seed == "" else seed, n, "seed")
    except InputError as e:
        raise WebInputError(str(e)) from None


def check_duration(wav: str | Path) -> None:
    """Audio longer than :data:`MAX_SPEECH_S` is refused with the limit in seconds (the CLI's message names
    its ``--max-duration-s`` option, which a page user cannot set).

    Raises:
        WebInputError: too long (names the file).
        AudioError: a file that cannot be decoded (the pipeline checks everything else).
    """
    import soundfile as sf

    try:
        seconds = sf.info(str(wav)).duration
    except Exception:  # noqa: BLE001 - not for soundfile (e.g. MP3 on an old libsndfile): decode it
        from speechvision.core.audio import MODEL_SAMPLE_RATE_HZ, AudioChecks, load_audio

        seconds = len(load_audio(wav, checks=AudioChecks(max_duration_s=float("inf")))) / MODEL_SAMPLE_RATE_HZ
    if seconds > MAX_SPEECH_S:
        raise WebInputError(f"{Path(wav).name}: the recording is {seconds:.1f} s long, over the {MAX_SPEECH_S:.0f} s "
                            "limit; record or upload a shorter description")


def _message(e: Exception) -> str:
    from speechvision.core.errors import is_user_error, one_line

    text = one_line(e)
    # Uploaded files live under Gradio's cache with long names: show only the file name.
    for token in text.split():
        if "/" in token and token.rstrip(":").startswith(("/", tempfile.gettempdir())):
            text = text.replace(token.rstrip(":"), Path(token.rstrip(":")).name)
    return f"**Error:** {text}" if is_user_error(e) else f"**Error:** internal problem ({type(e).__name__}); see the server log"


def _upscale(img: np.ndarray, size: int) -> np.ndarray:
    reps = max(1, size // img.shape[0])
    return img.repeat(reps, axis=0).repeat(reps, axis=1)


def build_app(service: SpeechToImageService, emotion=None, emotion_off: str = "No AVLM stack was loaded."):
    """The Gradio Blocks page over a :class:`SpeechToImageService` and, for the AVLM tab, an
    :class:`~speechvision.web_avlm.EmotionService` (None: the tab shows ``emotion_off``)."""
    import logging

    import gradio as gr

    from speechvision.data.captions import COLOURS

    log = logging.getLogger("speechvision.web")

    def on_generate(audio, text, seed, n):
        try:
            wav = audio if audio else service.speak(text)
            images, stages = service.speech_to_images(wav, seed=seed, n=n)
            size = images[0].shape[0]
            stage_items = [(_upscale(s, size), f"stage {k + 1}: {s.shape[0]} px") for k, s in enumerate(stages)]
            retrieved = service.retrieve(wav)
            status = f"{len(images)} image(s) of {size}x{size} px, seeds {int(seed)}-{int(seed) + len(images) - 1}"
            return images, stage_items, retrieved, status
        except Exception as e:  # noqa: BLE001 - every failure becomes a message on the page
            log.warning("request failed: %s", e)
            return [], [], [], _message(e)

    def on_swap(sentence, colours, seed):
        try:
            pairs = service.colour_swap(sentence, colours, seed=seed)
            return [(img, text) for img, text in pairs], f"{len(pairs)} colour(s), seed {int(seed)}"
        except Exception as e:  # noqa: BLE001
            log.warning("request failed: %s", e)
            return [], _message(e)

    with gr.Blocks(title="speechvision: speech to image", analytics_enabled=False) as app:
        gr.Markdown("# speechvision: speak, see the image\nS2IGAN (Wang et al., Interspeech 2020): a spoken "
                    "description in, an image out, with no text in between.")
        with gr.Tab("Speak"):
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="spoken description",
                                     elem_id="audio-in")
                    text = gr.Textbox(label="or type it (spoken by the bundled Piper voice)",
                                      placeholder="a red sneaker", elem_id="text-in")
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                        n = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="n images", elem_id="n-images")
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column():
                    status = gr.Markdown("", elem_id="status")
                    images = gr.Gallery(label="generated images", columns=4, height=300, elem_id="images", format="png")
                    stages = gr.Gallery(label="stages of the first image (low to high resolution)", columns=4,
                                        height=220, elem_id="stages", format="png")
                    retrieved = gr.Gallery(label="top-5 real images retrieved by the SEN", columns=5, height=200,
                                           elem_id="retrieved", visible=service.index is not None)
            go.click(on_generate, [audio, text, seed, n], [images, stages, retrieved, status], api_name="generate")
        with gr.Tab("Colour keyword"):
            sentence = gr.Textbox(value="this is a red coat", label="sentence (its colour word is replaced)",
                                  elem_id="swap-sentence")
            colours = gr.CheckboxGroup(list(COLOURS), value=list(COLOURS), label="colours", elem_id="swap-colours")
            swap_seed = gr.Number(value=0, precision=0, label="seed")
            swap_go = gr.Button("Speak each colour and generate", elem_id="swap-go")
            swap_status = gr.Markdown("", elem_id="swap-status")
            swap_images = gr.Gallery(label="same sentence, same seed, one colour word changed", columns=8,
                                     elem_id="swap-images", format="png")
            swap_go.click(on_swap, [sentence, colours, swap_seed], [swap_images, swap_status], api_name="colour_swap")
        from speechvision.web_avlm import emotion_tab

        emotion_tab(gr, emotion, emotion_off, log, _message)
    return app


def serve(checkpoint: str | Path | None = None, *, config: ServeConfig = ServeConfig(), data: str | Path | None = None,
          sen_checkpoint: str | Path | None = None, block: bool = True, avlm_stack: str | Path | None = None):
    """Load the models once and serve the page on ``config.host:config.port`` (no share link); says so on
    stderr once the models are loaded.

    Raises:
        InputError: the port is taken (checked before the model is loaded).
        CheckpointError, WebInputError: as :class:`SpeechToImageService`.
        AVLMError: ``avlm_stack`` given and not a loadable stack (without it a missing bundled stack only turns
            the AVLM tab off).
    """
    import sys

    from speechvision.web_avlm import load_emotion_service

    check_port(config.host, config.port)
    service = SpeechToImageService(checkpoint, data=data, sen_checkpoint=sen_checkpoint)
    emotion, emotion_off = load_emotion_service(avlm_stack)
    if emotion_off:
        print(f"speechvision: the AVLM tab is off: {emotion_off}", file=sys.stderr)
    if block:
        print(f"speechvision: serving on http://{config.host}:{config.port} (Ctrl+C stops)", file=sys.stderr)
    app = build_app(service, emotion, emotion_off)
    app.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    app.launch(server_name=config.host, server_port=config.port, share=False, prevent_thread_lock=not block,
               show_error=False, quiet=True)
    return app


def check_port(host: str, port: int) -> None:
    """``host:port`` can be listened on now.

    Raises:
        InputError: naming ``--port`` (and ``--host``) with the reason (in use, not an address of this machine).
    """
    import socket

    from speechvision.core.errors import InputError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise InputError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); choose another "
                         "--port (or --host)") from None


def load_test(url: str, wav: str | Path, *, requests: int = 20, n_images: int = 1) -> dict:
    """``requests`` concurrent "generate" calls against a running server (gradio_client, one thread
    each; request ``i`` uses seed ``100 i``, as different users would). Returns {"ok", "failed", "latency_s": sorted per-request seconds, "wall_s"}; a benchmark
    helper, it asserts nothing about time."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    def one(i):
        client = Client(url, verbose=False)
        t0 = time.perf_counter()
        images, _, _, status = client.predict(handle_file(str(wav)), "", 100 * i, n_images, api_name="/generate")
        return time.perf_counter() - t0, len(images) == n_images and not status.startswith("**Error")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(requests) as pool:
        results = list(pool.map(one, range(requests)))
    return {"ok": sum(ok for _, ok in results), "failed": sum(not ok for _, ok in results),
            "latency_s": sorted(t for t, _ in results), "wall_s": time.perf_counter() - t0}
