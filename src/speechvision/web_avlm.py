"""The web page's second tab (issue 20): a short face video with speech in; the emotion the AVLM perceives
from face and voice, a picture of the tracked face, and its spoken reply out.

The stack is the bundled one (``speechvision.avlm.bundle``) or ``serve --avlm-stack DIR``. Without a stack
the tab says so and the first tab still works. Bad input (a video without a face, without sound, too
long, not a video) comes back as a one-line message in the tab's status box, never a stack trace.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np

from speechvision.core.errors import SpeechvisionError

MAX_VIDEO_S = 20.0  # the longest clip the tab takes


class EmotionService:
    """The AVLM behind the tab: the stack, loaded once, and dlib's face analyser. One request at a time."""

    def __init__(self, stack_dir: str | Path | None = None):
        from speechvision.avlm.bundle import load_stack
        from speechvision.avlm.face import FaceAnalyzer

        self.stack = load_stack(stack_dir)
        self.analyzer = FaceAnalyzer()
        self._lock = threading.Lock()
        self._tmp = Path(tempfile.mkdtemp(prefix="speechvision-avlm-"))

    @property
    def label(self) -> str:
        return self.stack.meta.get("label", "trained on SYNTHETIC data")

    def respond(self, video: str | Path, *, seed: int = 0) -> dict:
        """Emotion probabilities, the tracked face and a spoken reply for one video with speech.

        Returns:
            {"probabilities": {emotion: p}, "emotion", "reply": WAV path, "picture": PNG path,
             "face_frames", "frames", "seconds"}.
        Raises:
            FaceError: no video, not a video, no sound, too long (over :data:`MAX_VIDEO_S`), or no face in any
                frame. TokenizerError: speech shorter than one unit frame.
        """
        from speechvision.avlm.demo import draw_demo
        from speechvision.avlm.face import FaceError, read_video
        from speechvision.avlm.infer import clip_batch, reply_to_clip
        from speechvision.avlm.media import audio_track
        from speechvision.core.tts import write_wav_atomic

        if not video:
            raise FaceError("upload or record a short video of a face speaking")
        video = Path(video)
        frames = read_video(video)
        if len(frames) / 25.0 > MAX_VIDEO_S:
            raise FaceError(f"{video.name}: the video is {len(frames) / 25.0:.1f} s long, over the {MAX_VIDEO_S:.0f} s "
                            "limit; record a shorter one")
        rate = self.stack.tok.config.sample_rate_hz
        wave = audio_track(video, rate)
        with self._lock:
            tokens, batch, track = clip_batch(self.stack.model, self.stack.tok, frames, wave, self.analyzer)
            r = reply_to_clip(self.stack.model, self.stack.speaker, tokens, batch, seed=seed)
        reply = Path(tempfile.mkstemp(suffix=".wav", dir=self._tmp)[1])
        write_wav_atomic(reply, r["wave"], rate)
        picture = Path(tempfile.mkstemp(suffix=".png", dir=self._tmp)[1])
        row = {"text": None, "true_emotion": None, "probabilities": r["probabilities"], "emotion": r["emotion"]}
        draw_demo([row], [(frames, track.landmarks, track.has_face)], picture, self.label)
        return {"probabilities": r["probabilities"], "emotion": r["emotion"], "reply": reply, "picture": picture,
                "face_frames": int(np.sum(track.has_face)), "frames": len(frames),
                "seconds": round(len(r["wave"]) / rate, 2)}


def load_emotion_service(stack_dir: str | Path | None = None) -> tuple[EmotionService | None, str]:
    """(service, "") or (None, why the tab is off): a missing stack leaves the tab with a message.

    Raises:
        AVLMError: ``stack_dir`` was given and is not a loadable stack (a bundled one that is missing is not
            an error).
    """
    from speechvision.avlm.model import AVLMError

    try:
        return EmotionService(stack_dir), ""
    except (AVLMError, SpeechvisionError, ImportError) as e:
        if stack_dir is not None:
            raise
        return None, f"No AVLM stack is available in this install ({e}). See docs/avlm.md."


def emotion_tab(gr, service: EmotionService | None, why_off: str, log, message) -> None:
    """Add the tab to the open ``gr.Blocks``; ``message`` turns an exception into the status line."""

    def on_respond(video, seed):
        if service is None:
            return None, None, None, f"**Error:** {why_off}"
        try:
            r = service.respond(video, seed=int(seed or 0))
            status = (f"heard and saw **{r['emotion']}**; face in {r['face_frames']} of {r['frames']} frames; "
                      f"reply of {r['seconds']} s. {service.label}")
            return r["probabilities"], str(r["reply"]), str(r["picture"]), status
        except Exception as e:  # noqa: BLE001 - every failure becomes a message on the page
            log.warning("emotion request failed: %s", e)
            return None, None, None, message(e)

    with gr.Tab("Emotion and reply (AVLM)", elem_id="emotion-tab"):
        gr.Markdown("Upload or record a short video of a face asking something. The AVLM (Tan et al., Findings "
                    "of EMNLP 2025) reads the emotion from face and voice and answers in it. "
                    + (service.label if service else why_off))
        with gr.Row():
            with gr.Column():
                video = gr.Video(sources=["upload", "webcam"], include_audio=True, label="face video with speech",
                                 elem_id="video-in")
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="emotion-seed")
                go = gr.Button("Recognise and reply", variant="primary", elem_id="emotion-go")
            with gr.Column():
                status = gr.Markdown("", elem_id="emotion-status")
                probs = gr.Label(label="emotion", num_top_classes=4, elem_id="emotion-probs")
                reply = gr.Audio(label="spoken reply", type="filepath", elem_id="reply-audio")
                picture = gr.Image(label="tracked face and emotion", type="filepath", elem_id="emotion-picture")
        go.click(on_respond, [video, seed], [probs, reply, picture, status], api_name="respond")
