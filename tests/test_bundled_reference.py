"""The bundled model gives the recorded embeddings and images (scripts/bundled_reference.py).

Checked in two halves, each at the tolerance its own cross-CPU variation needs:
- the speech encoder: CTranslate2's int8 Whisper kernels differ by CPU vendor and instruction set (MKL on
  Intel, not on AMD; AVX2 or AVX-512). On a 2-core AMD EPYC with AVX2 only (2026-12-07) its backends
  (default, ``CT2_FORCE_CPU_ISA=GENERIC``, ``CT2_USE_MKL=1``) agreed at cosine >= 0.99995 (max abs 0.0011),
  and that was enough to move the generated images by up to 10 grey levels from ones recorded on an Intel
  AVX-512 machine. So the embeddings must agree at cosine >= 0.9995 (a wrong weight, layer, front end or
  pooling moves them far more).
- the generator, from the recorded embeddings: PyTorch's kernel sets round differently (on that machine
  ``ATEN_CPU_CAPABILITY=default`` against AVX2: 1 grey level on 0.0006 % of pixels; an AMD AVX-512 machine
  against the Intel one: 1-2 pixels in 5 of 28 images). So at most 1 grey level apart per pixel and at most
  0.1 % of pixels differing.
"""

import numpy as np
import torch
from conftest import load_script
from PIL import Image


def test_bundled_speech_encoder_gives_the_recorded_embeddings():
    ref = load_script("bundled_reference")
    names, recorded = ref.recorded_embeddings()
    assert names == [w.stem for w in ref.example_wavs()]
    now = ref.reference_embeddings()
    assert now.shape == recorded.shape
    cos = torch.nn.functional.cosine_similarity(now, recorded)
    worst = int(cos.argmin())
    assert cos.min() >= 0.9995, f"{names[worst]}: cosine {cos[worst]:.6f} to the recorded embedding"


def test_bundled_generator_draws_the_recorded_images_from_the_recorded_embeddings():
    ref = load_script("bundled_reference")
    recorded = {p.stem: np.asarray(Image.open(p)) for p in sorted(ref.OUT.glob("*.png"))}
    assert len(recorded) >= 20, f"no reference images in {ref.OUT}; run scripts/bundled_reference.py"
    now = ref.reference_images(ref.recorded_embeddings()[1])
    assert sorted(now) == sorted(recorded)
    for name, img in now.items():
        diff = np.abs(img.astype(int) - recorded[name].astype(int))
        assert diff.max() <= 1, f"{name}: {diff.max()} grey levels from the reference"
        assert (diff > 0).mean() <= 1e-3, f"{name}: {(diff > 0).mean():.2%} of pixels differ from the reference"
