"""Face front-end: similarity alignment removes pose, dlib landmarks on a real photo through a real video
file, frames without a face are marked, crops are aligned."""

import numpy as np
import pytest

from speechvision.avlm.face import (
    CANONICAL_68,
    FaceError,
    align,
    expression_features,
    face_crops,
    read_video,
    similarity_transform,
)


def _pose(points, angle_deg, scale, shift):
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ (scale * rot).T + shift


def test_similarity_transform_recovers_a_known_pose():
    src = CANONICAL_68.astype(np.float64)
    dst = _pose(src, 17.0, 31.0, [50.0, 40.0])
    a = similarity_transform(src, dst)
    assert np.allclose(src @ a[:, :2].T + a[:, 2], dst, atol=1e-6)


def test_expression_features_do_not_depend_on_head_pose():
    rng = np.random.default_rng(0)
    smile = CANONICAL_68.copy()
    smile[[48, 54], 1] -= 0.1
    frames = np.stack([_pose(smile, ang, sc, sh) for ang, sc, sh in
                       ((0, 30, [48, 48]), (12, 25, [40, 55]), (-9, 36, [60, 44]))])
    feats = expression_features(frames)
    assert feats.shape == (3, 136)
    assert np.abs(feats - feats[0]).max() < 1e-4
    # the smile is still there, and a neutral face has (near) zero features
    assert np.abs(feats[0]).max() > 0.03
    assert np.abs(expression_features(_pose(CANONICAL_68, 5, 20, [1, 2])[None])).max() < 1e-4
    noisy = expression_features(frames + rng.normal(0, 0.5, frames.shape), has_face=np.array([True, False, True]))
    assert (noisy[1] == 0).all()
    with pytest.raises(FaceError, match=r"\(T, 68, 2\)"):
        align(np.zeros((3, 5, 2)))


def test_face_crops_put_the_landmarks_in_the_same_place():
    import cv2

    img = np.zeros((2, 120, 120), np.uint8)
    lms = np.stack([_pose(CANONICAL_68, 0, 30, [60, 50]), _pose(CANONICAL_68, 20, 22, [55, 65])])
    for i in range(2):  # a dot on the nose tip
        cv2.circle(img[i], tuple(int(v) for v in lms[i, 30]), 2, 255, -1)
    crops = face_crops(img, lms, size=48)
    peaks = [np.unravel_index(c.argmax(), c.shape) for c in crops]
    assert crops.shape == (2, 48, 48) and np.abs(np.subtract(*peaks)).max() <= 1


def test_dlib_tracks_a_real_face_in_a_video_file_and_marks_missing_faces(tmp_path):
    pytest.importorskip("dlib", reason="the avlm extra is not installed")
    data = pytest.importorskip("skimage.data")
    import cv2

    from speechvision.avlm.face import FaceAnalyzer

    photo = data.astronaut()[:256, 64:320]  # the astronaut's face, 256 x 256
    rot = cv2.warpAffine(photo, cv2.getRotationMatrix2D((128, 128), 12, 0.9), (256, 256))
    blank = np.full_like(photo, 128)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (256, 256))
    for f in (photo, rot, blank, photo):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    frames = read_video(path, fps=25.0)
    assert len(frames) == 10  # 4 frames at 10 fps = 0.4 s = 10 frames at 25 fps
    track = FaceAnalyzer().track(frames)
    assert track.has_face.tolist() == [True] * 5 + [False] * 3 + [True] * 2  # source frames 0 0 0 1 1 2 2 2 3 3
    feats = expression_features(track.landmarks, track.has_face)
    # the rotated, scaled frame has the same expression as the upright one (up to detector noise)
    assert np.abs(feats[3] - feats[0]).mean() < 0.02 < np.abs(feats[0]).mean()
    assert (feats[5:8] == 0).all()
    with pytest.raises(FaceError, match="missing"):
        read_video(tmp_path / "none.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(FaceError, match="no video frame"):
        read_video(tmp_path / "bad.mp4")
