"""What the S2IGAN writes for use elsewhere: the deployable bundle (``speechvision export``: the SEN speech
encoder, the EMA generator and the config, fp16 weights only), the precomputed GAN inputs (``train gan
--save-inputs``) and generated images as PNG files (``generate``, ``say``)."""

from __future__ import annotations

from pathlib import Path

from speechvision.core.audio import AudioChecks
from speechvision.core.checkpoint import save_checkpoint
from speechvision.s2igan.config import Config
from speechvision.s2igan.pipeline import S2IGANPipeline


def export_bundle(gan_run: str | Path, out: str | Path, *, fp16: bool = True,
                  sen_checkpoint: str | Path | None = None) -> Path:
    """Write the deployable bundle: SEN speech encoder + EMA generator + config (weights only)."""
    pipe = S2IGANPipeline.load(gan_run, sen_checkpoint=sen_checkpoint)

    def cast(sd):
        return {k: (v.half() if fp16 and v.is_floating_point() else v).cpu().contiguous() for k, v in sd.items()}

    save_checkpoint(out, "s2igan", {"config": pipe.config.to_dict(), "source": str(gan_run),
                                    "speech_encoder": cast(pipe.speech_encoder.state_dict()),
                                    "generator": cast(pipe.generator.state_dict())})
    return Path(out)


def save_gan_inputs(data: str | Path, sen_checkpoint: str | Path, cfg: Config, out: str | Path) -> Path:
    """Write the GAN stage's inputs, precomputed from the dataset folder ``data`` with the frozen SEN, to one
    safetensors file ``out``, to train the GAN on another machine (``train gan --data FILE``).

    The images are at the last stage's size of ``cfg``; their Inception features are left out (2048 floats
    per image are most of the file) and recomputed where the GAN trains.
    """
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.gan_data import prepare_gan_data
    from speechvision.s2igan.sen import load_sen

    sen, sen_cfg, _ = load_sen(sen_checkpoint)
    inputs = prepare_gan_data(load_dataset(data), sen, sen_cfg, cfg.gan.generator.sizes_px[-1])
    inputs.image_features = None
    inputs.compact().save(out)
    return Path(out)


def speech_to_pngs(checkpoint: str | Path | None, speech: list[Path], out: str | Path, *, seed: int = 0,
                   n_per_speech: int = 1, all_stages: bool = False,
                   checks: AudioChecks | None = None) -> tuple[list[Path], int]:
    """Generate ``n_per_speech`` images per wav with the bundle or GAN run ``checkpoint`` (None: the bundled
    model) and write them to the folder ``out`` as ``<wav stem>-seed<NNNN>.png`` (seeds ``seed``, ``seed + 1``,
    ... across all images); ``all_stages`` also writes the lower-resolution stages as ``...-stage<k>.png``.
    ``checks``: limits on each input utterance (default ``AudioChecks()``).

    Returns the final-stage PNG paths and their side in pixels.
    """
    from speechvision.core.images import save_pngs

    out = Path(out)
    stages = S2IGANPipeline.load(checkpoint).speech_to_images(speech, seed=seed, n_per_speech=n_per_speech,
                                                              checks=checks or AudioChecks())
    names = [f"{w.stem}-seed{seed + i:04d}" for i, w in enumerate(w for w in speech for _ in range(n_per_speech))]
    paths = [out / f"{name}.png" for name in names]
    save_pngs(stages[-1], paths)
    if all_stages:
        for k, images in enumerate(stages[:-1]):
            save_pngs(images, [out / f"{name}-stage{k + 1}.png" for name in names])
    return paths, stages[-1].shape[-1]


def text_to_png(text: str, out: str | Path, *, checkpoint: str | Path | None = None, seed: int = 0) -> Path:
    """Speak ``text`` with the default Piper voice and write the image generated from it to the PNG ``out``."""
    import tempfile

    from speechvision.core.images import save_pngs
    from speechvision.core.tts import DEFAULT_VOICE, synthesize, write_wav_atomic

    wave, rate = synthesize(text, DEFAULT_VOICE)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        write_wav_atomic(wav, wave, rate)
        images = S2IGANPipeline.load(checkpoint).speech_to_images([wav], seed=seed)[-1]
    save_pngs(images, [Path(out)])
    return Path(out)
