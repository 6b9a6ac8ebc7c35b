"""The bundled model's images are the ones recorded before the refactors (scripts/bundled_reference.py).

CPUs round differently even with the same kernel set: on an AMD EPYC reporting the same "AVX512"
capability as the Intel machine that recorded them, 5 of 28 images had 1 or 2 pixels one grey level
off. So on any machine: at most 1 grey level apart per pixel, and at most 0.1 % of pixels differing
(a wrong weight, layer or seed changes far more). The bundled speech encoder reads Whisper features from
CTranslate2's int8 kernels since 2026-12-06: forcing its AVX2 kernels on an AVX-512 machine gave the same images,
and PyTorch's AVX2 kernels 1 grey level on 0.02 % of pixels (only CTranslate2's scalar GENERIC kernels, on a CPU
without AVX2, would exceed the tolerance).
"""

import numpy as np
from conftest import load_script
from PIL import Image


def test_bundled_model_gives_the_recorded_images():
    ref = load_script("bundled_reference")
    recorded = {p.stem: np.asarray(Image.open(p)) for p in sorted(ref.OUT.glob("*.png"))}
    assert len(recorded) >= 20, f"no reference images in {ref.OUT}; run scripts/bundled_reference.py"
    now = ref.reference_images()
    assert sorted(now) == sorted(recorded)
    for name, img in now.items():
        diff = np.abs(img.astype(int) - recorded[name].astype(int))
        assert diff.max() <= 1, f"{name}: {diff.max()} grey levels from the reference"
        assert (diff > 0).mean() <= 1e-3, f"{name}: {(diff > 0).mean():.2%} of pixels differ from the reference"
