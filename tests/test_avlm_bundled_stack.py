"""The AVLM stack shipped inside the package (issue 20 item 4): it is there, weights only, within the 40 MB
budget, labelled as trained on synthetic data, and `avlm demo` runs on it offline with a reply per clip."""

import json

import pytest

pytest.importorskip("transformers", reason="the expressive extra is not installed")
pytest.importorskip("dlib", reason="the avlm extra is not installed")
pytest.importorskip("av", reason="PyAV is not installed")

from speechvision.avlm import bundle  # noqa: E402


def test_the_bundled_stack_is_small_synthetic_and_weights_only():
    root = bundle.bundled_stack_dir()
    meta = json.loads((root / "bundle.json").read_text())
    assert meta["synthetic"] is True and "SYNTHETIC" in meta["label"]
    assert bundle.folder_mb(root) <= bundle.MAX_BUNDLE_MB
    assert {p.suffix for p in root.rglob("*") if p.is_file()} <= {".json", ".safetensors", ".pt", ".mp4"}
    emotions = [c["emotion"] for c in meta["clips"]]
    assert sorted(emotions) == ["angry", "happy", "neutral", "sad"]
    from speechvision.core.checkpoint import load_checkpoint

    # weights-only speechvision checkpoints of the right kind (load_checkpoint never unpickles code)
    for name, kind in (("vocoder.pt", "vocoder"), ("dialogue.pt", "avlm")):
        load_checkpoint(root / name, kind)


@pytest.mark.slow
def test_avlm_demo_runs_on_the_bundled_stack(tmp_path):
    from speechvision.avlm.demo import PICTURE, run_demo

    result = run_demo(tmp_path / "demo", progress=False)
    assert result["synthetic"] is True and len(result["clips"]) == 4
    for row in result["clips"]:
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-3
        assert row["face_frames"] > 0.8 * row["frames"]  # dlib tracks the animated real face
        assert row["reply_seconds"] > 0.3 and (tmp_path / "demo" / row["reply"]).is_file()
    assert (tmp_path / "demo" / PICTURE).stat().st_size > 10_000
