"""The AVLM on real faces, as a sanity table (issue 20 item 6): reported as measured, not tuned.

Real faces that install offline: scikit-image's astronaut and cameraman photos and its ``lfw_subset`` (100
Labeled-Faces-in-the-Wild faces and 100 non-face patches, 25 x 25 grey), and the videos that ship inside
Gradio's package (people in some frames). Each still image becomes a 2 s, 25 fps video with a slow zoom.
Every clip gets the same question spoken by the default Piper voice, so the face is what differs between clips.

For each clip it reports dlib's face-detection rate (frames with a face), the frozen FER network's
expression (its mean class scores over the face frames, 7 classes, and that class mapped to the model's
four), and the AVLM stack's prediction. The non-face patches are the negative control (detections there are
false positives).

    python scripts/real_faces.py --out evals/real-faces                 # the bundled stack
    python scripts/real_faces.py --stack runs/avlm-stack --out evals/real-faces
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# the FER network's 7 classes mapped to the AVLM's 4 (fear and disgust are negative and low-arousal or
# negative and high-arousal; surprise has no counterpart and reads as neutral)
TO_FOUR = {"angry": "angry", "disgust": "angry", "fear": "sad", "happy": "happy", "sad": "sad",
           "surprise": "neutral", "neutral": "neutral"}
QUESTION = "Did you take the keys this morning?"


def still_to_video(image: np.ndarray, seconds: float = 2.0, fps: float = 25.0, zoom: float = 0.06) -> np.ndarray:
    """(T, H, W, 3) uint8: a slow centred zoom into a still RGB image (so it is a video, not one frame)."""
    import cv2

    h, w = image.shape[:2]
    frames = []
    for k in range(int(seconds * fps)):
        s = 1 + zoom * k / max(1, int(seconds * fps) - 1)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0, s)
        frames.append(cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def sources() -> list[tuple[str, str, np.ndarray]]:
    """[(group, name, frames (T, H, W, 3) uint8)] of every real face source found offline."""
    from skimage import data, transform

    from speechvision.avlm.face import read_video

    out = [("photo", "skimage astronaut", still_to_video(np.ascontiguousarray(data.astronaut()))),
           ("photo", "skimage cameraman", still_to_video(np.repeat(data.camera()[..., None], 3, -1)))]
    lfw = data.lfw_subset()
    for i, img in enumerate(lfw):
        big = (transform.resize(img, (100, 100), order=3) * 255).clip(0, 255).astype(np.uint8)
        group = "lfw face" if i < 100 else "lfw non-face"
        out.append((group, f"lfw_subset[{i}]", still_to_video(np.repeat(big[..., None], 3, -1), seconds=0.4)))
    try:
        import gradio

        media = Path(gradio.__file__).parent / "media_assets"
        # Gradio's images are animals, buildings and logos (dlib finds no face in any): only its videos
        for p in sorted((media / "videos").glob("*.mp4")):
            out.append(("gradio video", f"gradio {p.name}", read_video(p)[:50]))
    except ImportError:
        pass
    return out


def question_audio() -> np.ndarray:
    from speechvision.core.audio import resample
    from speechvision.core.tts import DEFAULT_VOICE, synthesize

    wave, rate = synthesize(QUESTION, DEFAULT_VOICE)
    return resample(wave.astype(np.float32), rate, 16000)


def main(argv=None) -> None:
    from tqdm import tqdm

    from speechvision.avlm.bundle import load_stack
    from speechvision.avlm.data.spoken_emotion import EMOTIONS
    from speechvision.avlm.face import FER_EMOTIONS, FER_MARGIN, FER_SIZE_PX, FaceAnalyzer, face_crops, fer_forward
    from speechvision.avlm.infer import clip_batch
    from speechvision.avlm.model import predict_emotion

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stack", type=Path, default=None, help="AVLM stack folder (default: the bundled one)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    stack = load_stack(args.stack)
    analyzer, wave = FaceAnalyzer(), question_audio()
    rows = []
    for group, name, frames in tqdm(sources(), desc="real faces", unit="clip"):
        found = [analyzer.landmarks(f) for f in frames]
        has = np.array([f is not None for f in found])
        row = {"group": group, "source": name, "frames": len(frames), "face_rate": float(has.mean())}
        if has.any():
            lms = np.stack([f for f in found if f is not None])
            scores = fer_forward(face_crops(frames[has], lms, size=FER_SIZE_PX, margin=FER_MARGIN))[1].mean(0)
            fer = FER_EMOTIONS[int(scores.argmax())]
            tokens, batch, _ = clip_batch(stack.model, stack.tok, frames, wave, analyzer)
            probs = predict_emotion(stack.model, stack.tok.vocab, tokens, batch["visual"], batch["visual_mask"])
            row.update({"fer": fer, "fer_as_four": TO_FOUR[fer], "model": EMOTIONS[int(probs.argmax())],
                        "model_probabilities": {e: round(float(p), 3) for e, p in zip(EMOTIONS, probs)}})
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    (args.out / "real-faces.json").write_text(json.dumps({"stack": str(stack.root), "question": QUESTION,
                                                          "summary": summary, "clips": rows}, indent=2))
    print(table(summary, rows))


def summarise(rows: list[dict]) -> dict:
    groups = {}
    for r in rows:
        g = groups.setdefault(r["group"], {"clips": 0, "face_rate_sum": 0.0, "with_face": 0, "agree": 0})
        g["clips"] += 1
        g["face_rate_sum"] += r["face_rate"]
        if "model" in r:
            g["with_face"] += 1
            g["agree"] += r["model"] == r["fer_as_four"]
    return {k: {"clips": g["clips"], "face_rate": round(g["face_rate_sum"] / g["clips"], 3),
                "clips_with_a_face": g["with_face"],
                "model_agrees_with_fer": round(g["agree"] / g["with_face"], 3) if g["with_face"] else None}
            for k, g in groups.items()}


def table(summary: dict, rows: list[dict]) -> str:
    lines = ["| group | clips | face-detection rate (frames) | clips with a face | AVLM = FER (mapped to 4) |",
             "|---|---|---|---|---|"]
    for k, s in summary.items():
        agree = "-" if s["model_agrees_with_fer"] is None else f"{s['model_agrees_with_fer']:.2f}"
        lines.append(f"| {k} | {s['clips']} | {s['face_rate']:.2f} | {s['clips_with_a_face']} | {agree} |")
    lines += ["", "| source | face rate | FER | AVLM |", "|---|---|---|---|"]
    for r in rows:
        if not r["group"].startswith("lfw"):
            lines.append(f"| {r['source']} | {r['face_rate']:.2f} | {r.get('fer', '-')} | {r.get('model', '-')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
