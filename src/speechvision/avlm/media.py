"""Audio and faces of short videos for the AVLM's demo and web tab: the audio track of a video file (PyAV,
FFmpeg's libraries, which ``faster-whisper`` already installs) and real-face clips animated by a landmark
sequence (scikit-image's piecewise-affine warp), so that a synthetic clip's expression can be shown on a real
face that dlib then tracks like any video."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speechvision.avlm.face import CANONICAL_68, FaceError, align, similarity_transform


def audio_track(path: str | Path, sample_rate_hz: int = 16000) -> np.ndarray:
    """(N,) float32 mono waveform of a video file's first audio stream, resampled to ``sample_rate_hz``.

    Raises:
        FaceError: the file is missing or unreadable, or it has no audio stream ("a video without sound").
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FaceError(f"{path}: missing")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise FaceError(f"{path}: not a readable video ({e})") from e
    with container:
        if not container.streams.audio:
            raise FaceError(f"{path}: the video has no sound (no audio stream); record it with the microphone on")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
        parts = []
        for frame in container.decode(container.streams.audio[0]):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    wave = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    if wave.size == 0:
        raise FaceError(f"{path}: the video's audio stream holds no samples")
    return wave


def animate_photo(photo: np.ndarray, photo_landmarks: np.ndarray, clip_landmarks: np.ndarray,
                  step: int = 4) -> np.ndarray:
    """A real face photo warped so that its expression follows a landmark sequence.

    The clip's pose-free expression (each frame aligned onto ``CANONICAL_68`` minus the canonical shape, in
    inter-ocular units) is mapped into the photo's frame by the photo's own similarity transform and added to
    its landmarks; a piecewise-affine warp (scikit-image's transform, evaluated every ``step`` pixels and
    interpolated, then OpenCV's remap) takes the photo's triangles to those points, with the border pinned.

    Args:
        photo: (H, W, 3) uint8 RGB face photo.
        photo_landmarks: (68, 2) its landmarks in pixels (``FaceAnalyzer.landmarks``).
        clip_landmarks: (T, 68, 2) the landmark sequence to follow (any frame and scale).
    Returns:
        (T, H, W, 3) uint8 frames.
    Raises:
        FaceError: arrays of the wrong shape.
    """
    import cv2

    photo_landmarks = np.asarray(photo_landmarks, np.float64)
    if photo.ndim != 3 or photo_landmarks.shape != (68, 2):
        raise FaceError(f"animate_photo needs an (H, W, 3) photo and (68, 2) landmarks, got {photo.shape} and "
                        f"{photo_landmarks.shape}")
    expression = align(clip_landmarks) - CANONICAL_68  # (T, 68, 2), raises FaceError for a bad shape
    to_canonical = similarity_transform(photo_landmarks, CANONICAL_68)
    back = np.linalg.inv(to_canonical[:, :2])  # canonical offsets -> photo pixels
    h, w = photo.shape[:2]
    border = np.array([[x, y] for x in (0, w / 2, w - 1) for y in (0, h / 2, h - 1) if (x, y) != (w / 2, h / 2)])
    gy, gx = np.mgrid[0:h + step:step, 0:w + step:step].astype(np.float64)
    grid = np.stack([np.minimum(gx, w - 1).ravel(), np.minimum(gy, h - 1).ravel()], 1)
    frames = np.empty((len(expression),) + photo.shape, np.uint8)
    for t, offsets in enumerate(expression):
        target = photo_landmarks + offsets @ back.T
        tform = _piecewise_affine(np.concatenate([target, border]), np.concatenate([photo_landmarks, border]))
        # the map is piecewise linear: evaluate it on a coarse grid and interpolate (exact inside triangles)
        coarse = tform(grid).reshape(gx.shape + (2,)).astype(np.float32)
        dense = cv2.resize(coarse, (gx.shape[1] * step, gx.shape[0] * step), interpolation=cv2.INTER_LINEAR)
        frames[t] = cv2.remap(photo, dense[:h, :w, 0], dense[:h, :w, 1], cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
    return frames


def _piecewise_affine(src: np.ndarray, dst: np.ndarray):
    """scikit-image's piecewise-affine transform mapping ``src`` points to ``dst`` points."""
    from skimage.transform import PiecewiseAffineTransform

    if hasattr(PiecewiseAffineTransform, "from_estimate"):
        return PiecewiseAffineTransform.from_estimate(src, dst)
    tform = PiecewiseAffineTransform()
    tform.estimate(src, dst)
    return tform


def write_video(path: str | Path, frames: np.ndarray, fps: float, wave: np.ndarray | None = None,
                sample_rate_hz: int = 16000) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames (and optionally a mono waveform) as an MP4 (H.264 + AAC, PyAV).

    Raises:
        FaceError: frames of the wrong shape.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise FaceError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2  # yuv420p needs even sizes
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=int(round(fps)))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = None
        if wave is not None:
            aus = out.add_stream("aac", rate=sample_rate_hz, layout="mono")
        for f in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if aus is not None:
            samples = np.asarray(wave, np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = sample_rate_hz
            for packet in aus.encode(frame):
                out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path
