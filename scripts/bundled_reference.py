"""Write the bundled model's test references into tests/data/bundled-reference/.

- ``embeddings.safetensors``: the speech embeddings (N, E) of every bundled example recording (sorted by name),
  from the public pipeline (``S2IGANPipeline.load().embed``), and ``names.txt``, their file stems in order;
- ``<stem>-seed<S>.png``: the images the public ``speech_to_images`` draws from those recorded embeddings, at
  two seeds;
- ``capability.txt``: PyTorch's CPU kernel set (AVX2, AVX512, ...) of the machine that wrote them.

``tests/test_bundled_reference.py`` checks the two halves apart, because they vary across CPUs by different
amounts: the speech encoder reads Whisper features from CTranslate2's int8 kernels, whose backend differs
by CPU vendor and instruction set (MKL on Intel, not on AMD; AVX2 or AVX-512), which moves an embedding by up
to about 0.001 (cosine >= 0.99995), and the generator turns that into up to 10 grey levels; the generator
itself, from the same embeddings, agrees within 1 grey level across kernel sets.

    python scripts/bundled_reference.py          # run once, before a refactor, on unchanged code
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import speechvision.demo as demo
from speechvision.core.cleanup import NO_CLEANUP
from speechvision.core.images import to_uint8
from speechvision.s2igan.pipeline import S2IGANPipeline

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "bundled-reference"
SEEDS = (0, 7)


def example_wavs() -> list[Path]:
    return sorted(demo.EXAMPLES.glob("*.flac"))


def _one_thread(fn):
    """Runs ``fn()`` on one thread: a parallel reduction's order varies between runs with more threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def _pipeline() -> S2IGANPipeline:
    return S2IGANPipeline.load(cleanup=NO_CLEANUP)  # the references predate the cleanup: the raw front end


def reference_embeddings() -> torch.Tensor:
    """(N, E) speech embeddings of the bundled examples (:func:`example_wavs` order)."""
    pipe = _pipeline()
    return _one_thread(lambda: pipe.embed(example_wavs()))


def reference_images(embeddings: torch.Tensor) -> dict[str, np.ndarray]:
    """``{"<stem>-seed<S>": (64, 64, 3) uint8}``: the public ``speech_to_images`` at ``SEEDS`` with the speech
    encoder's output replaced by ``embeddings`` (N, E), one row per :func:`example_wavs` file."""
    pipe, wavs = _pipeline(), example_wavs()
    if len(embeddings) != len(wavs):
        raise ValueError(f"{len(embeddings)} embeddings for {len(wavs)} example recordings")
    out = {}
    with mock.patch.object(pipe, "embed", return_value=embeddings):
        for seed in SEEDS:
            images = to_uint8(_one_thread(lambda: pipe.speech_to_images(wavs, seed=seed))[-1])
            # image i of a call has seed `seed + i`; the name records it
            out.update({f"{w.stem}-seed{seed + i}": img for i, (w, img) in enumerate(zip(wavs, images))})
    return out


def recorded_embeddings() -> tuple[list[str], torch.Tensor]:
    """The recorded (names, (N, E) embeddings)."""
    names = (OUT / "names.txt").read_text().split()
    return names, load_file(OUT / "embeddings.safetensors")["embeddings"]


def capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    emb = reference_embeddings()
    save_file({"embeddings": emb.contiguous()}, OUT / "embeddings.safetensors")
    (OUT / "names.txt").write_text("".join(f"{w.stem}\n" for w in example_wavs()))
    for name, img in reference_images(emb).items():
        Image.fromarray(img).save(OUT / f"{name}.png")
    (OUT / "capability.txt").write_text(capability() + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
