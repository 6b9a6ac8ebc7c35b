"""Write the bundled model's reference images: tests/data/bundled-reference/<stem>-seed<S>.png.

The images come from every bundled example recording at two seeds, through the public pipeline
(``S2IGANPipeline.load().speech_to_images``), plus ``capability.txt``: PyTorch's CPU kernel set
(AVX2, AVX512, ...) of the machine that wrote them. ``tests/test_bundled_reference.py`` regenerates
them and asserts bit-identical images on a machine of the same capability.

    python scripts/bundled_reference.py          # run once, before a refactor, on unchanged code
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import speechvision.demo as demo
from speechvision.core.cleanup import NO_CLEANUP
from speechvision.core.images import to_uint8
from speechvision.s2igan.pipeline import S2IGANPipeline

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "bundled-reference"
SEEDS = (0, 7)


def reference_images() -> dict[str, np.ndarray]:
    """``{"<stem>-seed<S>": (64, 64, 3) uint8}`` of the bundled model, examples x ``SEEDS``."""
    pipe = S2IGANPipeline.load(cleanup=NO_CLEANUP)  # the references predate the cleanup: the raw front end
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a parallel reduction's order varies between runs with more threads
    try:
        return _images(pipe, sorted(demo.EXAMPLES.glob("*.flac")))
    finally:
        torch.set_num_threads(threads)


def _images(pipe, wavs: list[Path]) -> dict[str, np.ndarray]:
    out = {}
    for seed in SEEDS:
        images = to_uint8(pipe.speech_to_images(wavs, seed=seed)[-1])
        # image i of a call has seed `seed + i`; the name records it
        out.update({f"{w.stem}-seed{seed + i}": img for i, (w, img) in enumerate(zip(wavs, images))})
    return out


def capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, img in reference_images().items():
        Image.fromarray(img).save(OUT / f"{name}.png")
    (OUT / "capability.txt").write_text(capability() + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
