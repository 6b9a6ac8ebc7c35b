"""``speechvision avlm demo``: the bundled AVLM stack (``avlm.bundle``) on its bundled clips, offline.

For each clip (a face video with a spoken question) it recognises the emotion from face and voice and speaks
a reply in that emotion. It writes into ``--out``:

- ``results.json``: per clip the text, the true emotion, the probabilities, the emotion used and the reply;
- ``replies/<clip>.wav``: the spoken replies (16 kHz);
- ``avlm-demo.png``: per clip three face frames with the tracked landmarks beside the emotion bar chart.

The stack is trained on SYNTHETIC data, and every output says so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from speechvision.avlm.data.spoken_emotion import EMOTIONS
from speechvision.core.atomic import atomic_write_text

PICTURE = "avlm-demo.png"


def run_demo(out: str | Path, *, root: str | Path | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Run the stack in ``root`` (default: the bundled one) on its clips and write the outputs into ``out``.

    Returns:
        results.json's content, with "seconds" (wall time).
    Raises:
        AVLMError: no stack there. FaceError: a clip without a face or sound.
    """
    from tqdm import tqdm

    from speechvision.avlm.bundle import load_stack
    from speechvision.avlm.face import FaceAnalyzer, read_video
    from speechvision.avlm.infer import clip_batch, reply_to_clip
    from speechvision.avlm.media import audio_track
    from speechvision.core.tts import write_wav_atomic

    start = time.perf_counter()
    out = Path(out)
    stack = load_stack(root)
    analyzer = FaceAnalyzer()
    rate = stack.tok.config.sample_rate_hz
    rows, shown = [], []
    for clip in tqdm(stack.clips(), desc="AVLM demo", unit="clip", disable=not progress):
        frames = read_video(clip["video"])
        tokens, batch, track = clip_batch(stack.model, stack.tok, frames, audio_track(clip["video"], rate), analyzer)
        r = reply_to_clip(stack.model, stack.speaker, tokens, batch, seed=seed)
        wav = Path("replies") / f"{clip['id']}.wav"
        write_wav_atomic(out / wav, r["wave"], rate)
        rows.append({"id": clip["id"], "text": clip.get("text"), "true_emotion": clip.get("emotion"),
                     "probabilities": {k: round(v, 4) for k, v in r["probabilities"].items()},
                     "emotion": r["emotion"], "reply": str(wav), "reply_seconds": round(len(r["wave"]) / rate, 2),
                     "face_frames": int(track.has_face.sum()), "frames": len(frames)})
        shown.append((frames, track.landmarks, track.has_face))
    draw_demo(rows, shown, out / PICTURE, stack.meta.get("label", "trained on SYNTHETIC data"))
    result = {"synthetic": True, "label": stack.meta.get("label"), "stack": str(stack.root), "clips": rows,
              "picture": PICTURE, "seconds": round(time.perf_counter() - start, 1)}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2))
    return result


FRAME_PX = 160
CHART_W, CHART_H = 300, FRAME_PX
BLUE, LIGHT, INK = (31, 119, 180), (174, 199, 232), (20, 20, 20)


def draw_demo(rows: list[dict], shown: list[tuple], path: Path, label: str) -> Path:
    """One row per clip: three frames (first, middle, last) with their tracked landmarks, then the emotion bar
    chart (the emotion the reply used in dark blue, the true emotion's bar outlined in black), drawn with PIL.

    Args:
        rows: results rows (``probabilities``, ``emotion``, ``true_emotion``, ``text``).
        shown: per row (frames (T, H, W, 3) uint8, landmarks (T, 68, 2) px, has_face (T,) bool).
    """
    import textwrap

    from PIL import Image, ImageDraw

    lines = textwrap.wrap(label, 120)
    head = 20 + 14 * len(lines)
    width = 3 * FRAME_PX + CHART_W
    sheet = Image.new("RGB", (width, head + len(rows) * (FRAME_PX + 24)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 4), "AVLM demo: emotion from face and voice, then a spoken reply in it", fill=INK)
    for k, line in enumerate(lines):
        draw.text((6, 18 + 14 * k), line, fill=(170, 0, 0))
    for i, (row, (frames, landmarks, has_face)) in enumerate(zip(rows, shown)):
        y0 = head + i * (FRAME_PX + 24)
        caption = ([f'"{row["text"]}"'] if row.get("text") else []) + (
            [f"true: {row['true_emotion']}"] if row.get("true_emotion") else []) + [f"reply in: {row['emotion']}"]
        draw.text((6, y0 + 2), "  ".join(caption), fill=INK)
        for j, t in enumerate(np.linspace(0, len(frames) - 1, 3).round().astype(int)):
            sheet.paste(_frame_with_landmarks(frames[t], landmarks[t] if has_face[t] else None),
                        (j * FRAME_PX, y0 + 16))
        _bars(draw, row, 3 * FRAME_PX, y0 + 16)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _frame_with_landmarks(frame: np.ndarray, landmarks: np.ndarray | None):
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    scale = FRAME_PX / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)))
    draw = ImageDraw.Draw(img)
    if landmarks is None:
        draw.text((4, 4), "no face", fill=(255, 0, 0))
    else:
        for x, y in np.asarray(landmarks) * scale:
            draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(0, 229, 255))
    return img


def _bars(draw, row: dict, x0: int, y0: int) -> None:
    n, base, top = len(EMOTIONS), y0 + CHART_H - 16, y0 + 6
    slot = (CHART_W - 20) // n
    draw.line((x0 + 8, base, x0 + CHART_W - 8, base), fill=INK)
    for k, e in enumerate(EMOTIONS):
        p = float(row["probabilities"][e])
        left = x0 + 12 + k * slot
        box = (left, base - p * (base - top), left + slot - 10, base)
        draw.rectangle(box, fill=BLUE if e == row["emotion"] else LIGHT,
                       outline=INK if e == row.get("true_emotion") else None, width=2)
        draw.text((left, base + 2), e, fill=INK)
        draw.text((left, max(top, box[1] - 12)), f"{p:.2f}", fill=INK)
