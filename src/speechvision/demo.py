"""``speechvision demo``: the bundled spoken-fashion model on the bundled example recordings.

Writes ``demo-grid.png`` (one row per spoken description, four seeds each), ``colour-swap.png`` (the
paper's colour-keyword experiment: one sentence, only the colour word changed) and one PNG per image.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
EXAMPLES = ASSETS / "examples"

# (file stem, text, voice id): the bundled recordings; the swap sentence is spoken in every colour.
EXAMPLE_TEXTS = [
    ("red-sneaker", "a red sneaker", "espeak-f3"),
    ("blue-trousers", "this is a pair of blue trousers", "piper-joe-fast"),
    ("green-bag", "show me a green handbag", "espeak-m7"),
    ("purple-dress", "a picture of a purple dress", "piper-joe"),
    ("yellow-pullover", "the sweater is yellow", "espeak-f5"),
    ("black-ankle-boot", "i see a black ankle boot", "espeak-m1"),
]
SWAP_GARMENT = "coat"  # spoken as caption template 1, "this is a <colour> coat"


def swap_text(colour: str) -> str:
    from speechvision.data.captions import caption

    return caption(1, SWAP_GARMENT, 0, colour)


def swap_stem(colour: str) -> str:
    return f"swap-{colour}-coat"


def swap_wavs() -> list[Path]:
    """The bundled colour-swap recordings, one per colour in ``COLOURS`` order."""
    from speechvision.data.captions import COLOURS

    return [EXAMPLES / f"{swap_stem(c)}.flac" for c in COLOURS]


def make_examples(out: Path = EXAMPLES, sample_rate_hz: int = 16000) -> list[Path]:
    """(Re)create the bundled example recordings as 16 kHz FLAC (the front-end resamples to 22.05 kHz)."""
    import soundfile as sf

    from speechvision.core.audio import resample
    from speechvision.core.tts import ALL_VOICES, DEFAULT_VOICE, synthesize
    from speechvision.data.captions import COLOURS

    out.mkdir(parents=True, exist_ok=True)
    items = list(EXAMPLE_TEXTS) + [
        (swap_stem(c), swap_text(c), DEFAULT_VOICE.id) for c in COLOURS]
    paths = []
    for stem, text, voice in items:
        wave, rate = synthesize(text, ALL_VOICES[voice])
        path = out / f"{stem}.flac"
        sf.write(path, resample(wave, rate, sample_rate_hz), sample_rate_hz, format="FLAC")
        paths.append(path)
    return paths


def run_demo(out: Path = Path("demo-output"), checkpoint: Path | None = None) -> Path:
    from speechvision.core.checkpoint import CheckpointError
    from speechvision.core.images import save_grid, save_pngs
    from speechvision.data.captions import COLOURS
    from speechvision.s2igan.pipeline import BUNDLED, S2IGANPipeline

    if checkpoint is None and not BUNDLED.is_file():
        raise CheckpointError(f"{BUNDLED}: the bundled model is missing from this install; reinstall speechvision")
    pipe = S2IGANPipeline.load(checkpoint)
    out = Path(out)
    wavs = [EXAMPLES / f"{stem}.flac" for stem, _, _ in EXAMPLE_TEXTS]
    images = pipe.speech_to_images(wavs, seed=0, n_per_speech=4)[-1]
    save_grid(images, out / "demo-grid.png", nrow=4)
    save_pngs(images, [out / f"{stem}-seed{i:04d}.png" for i, stem in
                       enumerate(stem for stem, _, _ in EXAMPLE_TEXTS for _ in range(4))])
    emb = pipe.embed(swap_wavs())
    swap = pipe.generate(emb, [7] * len(COLOURS))[-1]  # same seed: only the colour word differs
    save_grid(swap, out / "colour-swap.png", nrow=len(COLOURS))
    print(f"spoken descriptions -> images ({images.shape[-1]}x{images.shape[-1]} px, 4 seeds each):")
    for row, (stem, text, voice) in enumerate(EXAMPLE_TEXTS, 1):
        print(f"  row {row}: \"{text}\" ({voice}, {stem}.flac)")
    print(f"wrote {out / 'demo-grid.png'}")
    print(f"colour-keyword swap, \"{swap_text('<colour>')}\" with "
          f"{', '.join(COLOURS)} (left to right, same seed)")
    print(f"wrote {out / 'colour-swap.png'}")
    return out


__all__ = ["run_demo", "make_examples", "swap_wavs"]
