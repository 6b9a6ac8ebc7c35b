"""Training of the S2IGAN generator stage (DSG + discriminators + RS) on a frozen SEN.

Run folder: ``config.json``, ``log.jsonl`` (append-only), ``checkpoint.pt`` (G, EMA G, Ds, RS,
optimisers, step, config, version), ``snapshots/step%08d.png`` (fixed captions and noise).
Every step's randomness (batch order, caption choice, noise, mismatched and same-class pairs) is a
function of ``(seed, step)``, so ``--resume`` after a kill continues exactly where the checkpoint was.

The pieces: :mod:`speechvision.s2igan.gan_data` (what the stage reads: ``GANData``, ``prepare_gan_data``,
``GANBatches``) and :mod:`speechvision.s2igan.gan_loop` (build, resume, steps, log, snapshots,
checkpoints); :func:`train_gan` wires them. ``GANData``, ``GANBatches``, ``prepare_gan_data``,
``uint8_pyramid``, ``build_models`` and ``ema_update`` stay importable from here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speechvision.core.checkpoint import CheckpointError, checkpoint_file
from speechvision.core.distributed import DistInfo, init_from_env, local_slice
from speechvision.core.inception import InceptionFeatures
from speechvision.core.run import RunFolder
from speechvision.data.manifest import DatasetError
from speechvision.s2igan.config import Config, apply_overrides
from speechvision.s2igan.gan_data import (
    CaptionEmbedder,
    GANBatches,
    GANData,
    load_gan_data,
    prepare_gan_data,
    relation_embeddings,
    uint8_pyramid,
)
from speechvision.s2igan.gan_loop import GANLoop, GANTraining, Snapshots, build_models, ema_update, requires_grad
from speechvision.s2igan.losses import S2IGANLoss
from speechvision.s2igan.relation_encoder import RelationImageEncoder
from speechvision.s2igan.resume import resume_config
from speechvision.s2igan.sen import load_sen

__all__ = ["GANBatches", "GANData", "ablation_overrides", "apply_ablation", "build_models", "default_device",
           "ema_update", "prepare_gan_data", "train_gan", "uint8_pyramid"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_gan(data: str | Path, sen_checkpoint: str | Path, out: str | Path, cfg: Config, *, resume: bool = False,
              device: str | None = None, progress: bool = True, stop_after_step: int | None = None,
              inception_weights: str | Path | None = None, max_minutes: float | None = None,
              sync_batchnorm: bool = False, amp: str | None = None, channels_last: bool = True,
              compile_generator: bool = False, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Train the generator stage; returns the last log entry.

    ``resume`` continues the run in ``out`` with its own config (``cfg`` is not read) and ``overrides``
    (``section.key=value``) applied to it, when :mod:`speechvision.s2igan.resume` allows them (iterations,
    learning rates, the log, snapshot and checkpoint periods); a change is recorded in ``log.jsonl``
    (``{"resumed_at_step": N, "overrides": {...}}``) and ``config.json``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it runs data-parallel (:mod:`.distributed`): the global
    batch ``gan.batch_size`` is split across processes, gradients are averaged per phase, rank 0 logs
    and checkpoints; ``sync_batchnorm`` makes batch-norm statistics global.

    GPU path: ``amp="bf16"`` runs the forward passes under bfloat16 autocast (weights, optimiser
    state and checkpoints stay fp32), ``channels_last`` stores G and the discriminators in NHWC, and
    ``compile_generator`` wraps G in ``torch.compile``. All three also run on CPU; channels_last is
    the default (1.1-1.3x faster on CPU too, docs/performance.md).

    ``data`` is a dataset folder or a ``GANData`` safetensors file (see :meth:`GANData.save`).
    ``stop_after_step`` ends the run after that step as a kill would (for tests); ``max_minutes`` ends it
    (with a checkpoint) once that much wall time has passed, for time-boxed runs; ``--resume`` continues.

    Raises:
        CheckpointError: bad SEN checkpoint, ``--resume`` without a run, or an existing run without it.
        ConfigError: an override ``--resume`` may not apply (one that changes the architecture).
        DatasetError: bad dataset, too few images.
        ValueError: ``amp`` other than ``"bf16"`` or None.
    """
    info, device = init_from_env(device)
    folder = RunFolder(out, "gan", main=info.is_main)
    ckpt, changes = folder.start(resume), {}
    if ckpt is not None:
        cfg, changes = resume_config(ckpt["config"], overrides, ("gan.iterations", ckpt["step"]))
        sen_checkpoint = resume_sen(sen_checkpoint, ckpt["sen_checkpoint"])
    dev = torch.device(device) if device else default_device()
    sen, sen_cfg, sen_ckpt = load_sen(sen_checkpoint)
    gc = cfg.gan
    _check_setup(cfg, sen_cfg, sen_checkpoint, info)
    progress = progress and info.is_main
    aug = cfg.data.augment
    fresh = aug if aug.enabled and aug.on_the_fly else None  # a new view every epoch, encoded per batch
    gd, inputs = load_gan_data(data, gc, sen, sen_cfg, progress=progress, fresh=fresh)
    image_head = sen.image_encoder.to(dev).eval()
    rs_encoder = (RelationImageEncoder(InceptionFeatures(inception_weights, device=dev), image_head,
                                       gc.rs_image_size_px, gc.rs_bf16) if gc.rs else None)
    image_emb = (relation_embeddings(gd, rs_encoder, progress=progress) if gc.rs and fresh is None
                 else torch.zeros(len(gd.images), 1))
    batches = GANBatches(gd.images, gd.labels, gd.captions_of(), None if gc.end_to_end else gd.embeddings,
                         image_emb, gc, dev, sources=gd.sources,
                         embed_real=rs_encoder.real if gc.rs and fresh is not None else None)

    if not gc.sen_pretrained:  # the "end-to-end" ablation without a pretrained SEN (a resume loads its weights)
        reinitialise(sen.speech_encoder, gc.seed)
    heads = list(sen.attribute_heads.values()) if gc.attribute_condition else []
    if heads and ckpt is None:  # a new run: the generator reads the SEN's attribute posteriors (issue 17)
        gc.generator.attribute_sizes = tuple(h.out_features for h in heads)
    training = GANTraining.build(cfg, dev, sen.speech_encoder, sync_batchnorm=info.active and sync_batchnorm,
                                 channels_last=channels_last)
    if heads and ckpt is None:  # a resume restores them with the generator
        for g in (training.G, training.G_ema):
            g.set_attribute_heads(heads)
    if amp not in (None, "bf16"):
        raise ValueError(f"amp must be bf16 or None, got {amp!r}")
    start = training.load_state(ckpt) if ckpt is not None else 0
    requires_grad([image_head, sen], False)
    if gc.end_to_end:
        requires_grad([training.speech_encoder], True)

    G = torch.compile(training.G) if compile_generator else training.G
    sen_path = str(Path(sen_ckpt["path"]).resolve())  # absolute: generate/evaluate may run from another folder
    embed = CaptionEmbedder(gd.embeddings, gd.audio_paths, dev,
                            training.speech_encoder if gc.end_to_end else None, inputs)
    snapshots = Snapshots(gd.snapshot_audio, cfg, dev, folder.path / "snapshots")
    fake_embedder = rs_encoder.fake if gc.rs else None
    loop = GANLoop(training=training, loss=S2IGANLoss(G, training.Ds, training.RS, fake_embedder, gc),
                   batches=batches, embed=embed, snapshots=snapshots,
                   folder=folder, info=info, device=dev, sen_checkpoint=sen_path,
                   autocast=torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp == "bf16"))
    folder.write_config({"config": cfg.to_dict(), "data": str(Path(data).resolve()),
                         "sen_checkpoint": sen_path, "device": str(dev),
                         "processes": info.world_size, "sync_batchnorm": sync_batchnorm})
    if changes:
        folder.append_log({"resumed_at_step": start, "overrides": changes})
    return loop.run(start, stop_after_step=stop_after_step, max_minutes=max_minutes, progress=progress)


def resume_sen(given: str | Path | None, recorded: str) -> str | Path:
    """The SEN a resumed run continues with: the one it recorded; ``given`` only where the recorded file
    is gone (a run moved to another machine) or ``given`` is that same file.

    Raises:
        CheckpointError: ``given`` is another SEN while the recorded one still exists (one line, names both).
    """
    if given is None:
        return recorded
    if Path(recorded).is_file() and checkpoint_file(given).resolve() != Path(recorded).resolve():
        raise CheckpointError(f"--sen {given}: this run was trained with the SEN {recorded}; drop --sen to resume "
                              "with it, or start a new --out to train on another SEN")
    return given


def _check_setup(cfg: Config, sen_cfg: Config, sen_checkpoint: str | Path, info: DistInfo) -> None:
    """Raises DatasetError when ``gan.batch_size`` does not split over the processes, CheckpointError when the
    relation supervisor is on but the SEN (``sen_cfg``, from ``sen_checkpoint``) lacks the Inception image encoder."""
    try:
        local_slice(cfg.gan.batch_size, info)
    except ValueError as e:
        raise DatasetError(f"gan.batch_size: {e}") from None
    if sen_cfg.sen.image.kind != "inception" and cfg.gan.rs:
        raise CheckpointError(f"{sen_checkpoint}: the RS needs a SEN with the Inception image encoder; "
                              "use --no-rs or train the SEN with sen.image.kind=inception")
    if cfg.gan.attribute_condition and not sen_cfg.sen.factored:
        raise CheckpointError(f"{sen_checkpoint}: gan.attribute_condition needs a SEN trained with sen.factored "
                              "(this one has no attribute heads)")


def ablation_overrides(*, no_dense: bool, no_rs: bool, end_to_end: bool) -> list[str]:
    """The paper's ablation switches as config overrides."""
    return ((["gan.generator.dense=false"] if no_dense else []) + (["gan.rs=false"] if no_rs else [])
            + (["gan.end_to_end=true"] if end_to_end else []))


def apply_ablation(cfg: Config, *, no_dense: bool, no_rs: bool, end_to_end: bool) -> Config:
    """The paper's ablation switches applied to ``cfg`` (see :func:`ablation_overrides`)."""
    return apply_overrides(cfg, ablation_overrides(no_dense=no_dense, no_rs=no_rs, end_to_end=end_to_end))


def reinitialise(module: torch.nn.Module, seed: int) -> None:
    """Every submodule's own ``reset_parameters`` under a fixed seed (PyTorch's default initialisation), so the
    fresh weights are reproducible and the global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
