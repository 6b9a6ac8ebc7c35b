"""What the S2IGAN writes for use elsewhere: the deployable bundle (``speechvision export``: the SEN speech
encoder, the EMA generator and the config, fp16 weights only), the precomputed GAN inputs (``train gan
--save-inputs``) and generated images as PNG files (``generate``, ``say``)."""

from __future__ import annotations

from pathlib import Path

from speechvision.core.audio import AudioChecks
from speechvision.core.checkpoint import save_checkpoint
from speechvision.core.cleanup import Cleanup
from speechvision.core.errors import InputError, OutputError, check_seed_range
from speechvision.s2igan.config import Config
from speechvision.s2igan.pipeline import S2IGANPipeline


def export_bundle(gan_run: str | Path, out: str | Path, *, fp16: bool = True,
                  sen_checkpoint: str | Path | None = None) -> Path:
    """Write the deployable bundle: SEN speech encoder + EMA generator + config (weights only)."""
    return write_bundle(S2IGANPipeline.load(gan_run, sen_checkpoint=sen_checkpoint), out, str(gan_run), fp16=fp16)


def write_bundle(pipe: S2IGANPipeline, out: str | Path, source: str, *, fp16: bool = True) -> Path:
    """``pipe``'s speech encoder, generator and config as a bundle (kind ``s2igan``, weights only, fp16 by
    default, written atomically); ``source``: what it was made from, kept in the file."""

    def cast(sd):
        return {k: (v.half() if fp16 and v.is_floating_point() else v).cpu().contiguous() for k, v in sd.items()}

    save_checkpoint(out, "s2igan", {"config": pipe.config.to_dict(), "source": source,
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


def png_names(speech: list[Path], seed: int, n_per_speech: int) -> list[str]:
    """The file stems ``<wav stem>-seed<NNNN>`` of the images ``speech_to_pngs`` writes, in order.

    Raises:
        InputError: two inputs with the same file stem (their images would share names).
    """
    first: dict[str, Path] = {}
    for w in speech:
        if first.setdefault(Path(w).stem, Path(w)) != Path(w):
            raise InputError(f"--speech {first[Path(w).stem]} and {w}: the same file name stem, so their images "
                             "would share file names; rename one or generate them apart")
    return [f"{Path(w).stem}-seed{seed + i:04d}" for i, w in enumerate(w for w in speech for _ in range(n_per_speech))]


def speech_to_pngs(checkpoint: str | Path | None, speech: list[Path], out: str | Path, *, seed: int = 0,
                   n_per_speech: int = 1, all_stages: bool = False, checks: AudioChecks | None = None,
                   overwrite: bool = False, cleanup: Cleanup = Cleanup()) -> tuple[list[Path], int]:
    """Generate ``n_per_speech`` images per wav with the bundle or GAN run ``checkpoint`` (None: the bundled
    model) and write them to the folder ``out`` as ``<wav stem>-seed<NNNN>.png`` (seeds ``seed``, ``seed + 1``,
    ... across all images); ``all_stages`` also writes the lower-resolution stages as ``...-stage<k>.png``.
    ``checks``: limits on each input utterance (default ``AudioChecks()``); ``cleanup``: the microphone cleanup
    of each input (:mod:`speechvision.core.cleanup`).

    Returns the final-stage PNG paths and their side in pixels.

    Raises:
        InputError: a count or seed out of range, or inputs whose images would share names.
        OutputError: ``out`` is a file, or (unless ``overwrite``) an image to write exists already.
        AudioError, CheckpointError: as :meth:`S2IGANPipeline.speech_to_images` and :meth:`S2IGANPipeline.load`.
    """
    from speechvision.core.images import save_pngs

    out = Path(out)
    if n_per_speech < 1:
        raise InputError(f"--n-per-speech {n_per_speech}: give 1 or more images per utterance")
    check_seed_range(seed, len(speech) * n_per_speech, "--seed")
    names = png_names(speech, seed, n_per_speech)
    check_new_files(out, [], overwrite)
    pipe = S2IGANPipeline.load(checkpoint, cleanup=cleanup)
    lower = range(1, pipe.config.gan.generator.stages) if all_stages else range(0)
    paths = [out / f"{name}.png" for name in names]
    stage_paths = [[out / f"{name}-stage{k}.png" for name in names] for k in lower]
    check_new_files(out, paths + [p for ps in stage_paths for p in ps], overwrite)
    stages = pipe.speech_to_images(speech, seed=seed, n_per_speech=n_per_speech, checks=checks or AudioChecks())
    save_pngs(stages[-1], paths)
    for images, ps in zip(stages, stage_paths):
        save_pngs(images, ps)
    return paths, stages[-1].shape[-1]


def check_new_files(out: Path, paths: list[Path], overwrite: bool) -> None:
    """The folder ``out`` may take ``paths``: it is not a file and (unless ``overwrite``) holds none of them.

    Raises:
        OutputError: naming the folder or the first existing file, and how many exist.
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: a file exists there; --out takes a folder")
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"--out {out}: {existing[0].name} exists"
                          + (f" (and {len(existing) - 1} more of the images to write)" if len(existing) > 1 else "")
                          + "; pass --force to replace them, or choose another --out or --seed")


def text_to_png(text: str, out: str | Path, *, checkpoint: str | Path | None = None, seed: int = 0,
                cleanup: Cleanup = Cleanup()) -> Path:
    """Speak ``text`` with the default Piper voice and write the image generated from it to the PNG ``out``
    (the speech goes through ``cleanup`` as a recording would).

    Raises:
        InputError: a seed out of range, or a text that speaks for longer than the model takes (30 s).
        TTSError, CheckpointError: as :func:`~speechvision.core.tts.synthesize` and :meth:`S2IGANPipeline.load`.
    """
    import tempfile

    from speechvision.core.images import save_pngs
    from speechvision.core.tts import DEFAULT_VOICE, synthesize, write_wav_atomic

    check_seed_range(seed, 1, "--seed")
    wave, rate = synthesize(text, DEFAULT_VOICE)
    check_spoken_length(len(wave) / rate, "the text")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        write_wav_atomic(wav, wave, rate)
        images = S2IGANPipeline.load(checkpoint, cleanup=cleanup).speech_to_images([wav], seed=seed)[-1]
    save_pngs(images, [Path(out)])
    return Path(out)


def check_spoken_length(seconds: float, what: str, limit_s: float = AudioChecks.max_duration_s) -> None:
    """A synthesised utterance fits the model's input limit.

    Raises:
        InputError: ``what`` speaks for longer than ``limit_s``; says the limit in seconds and what to do.
    """
    if seconds > limit_s:
        raise InputError(f"{what} speaks for {seconds:.1f} s, over the {limit_s:.0f} s the speech encoder takes; "
                         "shorten it")
