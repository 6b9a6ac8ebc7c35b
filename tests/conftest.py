import gzip
import importlib.util
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest


def load_script(name: str):
    """The module ``scripts/<name>.py`` (scripts are files, not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for the web server and torch.distributed tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def fake_fashion_mnist(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST in the real idx.gz format: blobs of varying size per class."""
    root = tmp_path_factory.mktemp("fashion-mnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 400), ("t10k", 300)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, lab in enumerate(labels):
            r = 4 + lab
            images[i, 14 - r:14 + r, 14 - r // 2:14 + r // 2] = 200 + rng.integers(0, 55)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def sine(duration_s=1.0, rate=22050, freq=220.0, amp=0.3):
    t = np.arange(int(duration_s * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (sudo apt-get install -y espeak-ng)")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="flite not installed (sudo apt-get install -y flite)")


@pytest.fixture(scope="session")
def tiny_spoken_fashion(tmp_path_factory, fake_fashion_mnist) -> Path:
    """A 40-image spoken-fashion build with real synthesised speech (espeak voices when installed)."""
    from speechvision.data.spoken_fashion import BuildConfig, build_spoken_fashion

    voices = {}
    if shutil.which("espeak-ng") is None:
        voices = dict(train_voices=("piper-joe", "piper-joe-slow"), heldout_voices=("piper-joe-fast",))
    out = tmp_path_factory.mktemp("data") / "sf"
    return build_spoken_fashion(out, fashion_mnist=fake_fashion_mnist, progress=False,
                                config=BuildConfig(images=48, unseen_images=8, captions_per_combo=10, **voices))
