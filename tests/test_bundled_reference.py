"""The bundled model's images are the ones recorded before the refactors (scripts/bundled_reference.py).

Bit-identical on a machine with the CPU kernel set the references were written with; on another
(AVX2 vs AVX-512 kernels round differently) at most 1 grey level apart per pixel.
"""

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bundled_reference.py"


def _script():
    spec = importlib.util.spec_from_file_location("bundled_reference", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bundled_model_gives_the_recorded_images():
    ref = _script()
    recorded = {p.stem: np.asarray(Image.open(p)) for p in sorted(ref.OUT.glob("*.png"))}
    assert len(recorded) >= 20, f"no reference images in {ref.OUT}; run scripts/bundled_reference.py"
    now = ref.reference_images()
    assert sorted(now) == sorted(recorded)
    same_kernels = (ref.OUT / "capability.txt").read_text().strip() == ref.capability()
    for name, img in now.items():
        if same_kernels:
            assert np.array_equal(img, recorded[name]), f"{name}: not bit-identical to the reference"
        else:
            diff = np.abs(img.astype(int) - recorded[name].astype(int))
            assert diff.max() <= 1, f"{name}: {diff.max()} grey levels from the reference"
