"""``speechvision pipeline``: data -> image features -> SEN -> GAN -> attribute judges -> evaluation -> bundle,
in one resumable command (:mod:`speechvision.s2igan.train_all`)."""

from __future__ import annotations

from pathlib import Path

from speechvision.cli.common import (
    Writes,
    add_config_options,
    command,
    non_negative_int,
    positive_int,
    shows_progress,
)


def add_pipeline_arguments(p) -> None:
    p.add_argument("--out", required=True, type=Path, help="the run folder (rerun the same command to resume)")
    p.add_argument("--images", type=positive_int, default=None,
                   help="spoken-fashion images in train+val+test (default: the builder's 15000)")
    p.add_argument("--steps", type=positive_int, default=None, help="GAN iterations (default: the preset's)")
    p.add_argument("--judge-epochs", type=positive_int, default=10, help="epochs of the attribute judges")
    p.add_argument("--data", type=Path, default=None, help="train on this built dataset instead of building one")
    p.add_argument("--sen", type=Path, default=None,
                   help="use this finished SEN run instead of training one (the GAN-only ablation rows)")
    p.add_argument("--judges", type=Path, default=None,
                   help="use these trained attribute judges (a `train classifier` folder) instead of training them")
    p.add_argument("--fashion-mnist", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                   help="folder with the four Fashion-MNIST idx .gz files (Debian: dataset-fashion-mnist)")
    p.add_argument("--workers", type=positive_int, default=None, help="synthesis processes (default: CPU count)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="dataset seed")
    add_config_options(p)


@command("pipeline", progress=True, arguments=add_pipeline_arguments, writes=Writes("place", None),
         help="train everything: data, image features, SEN, GAN, judges, evaluation, bundle (resumable)",
         example="--out runs/sf --images 2000 --steps 3000")
def cmd_pipeline(args) -> None:
    from speechvision.s2igan.train_all import PipelineOptions, run_pipeline, summary_markdown

    opts = PipelineOptions(preset=args.preset, overrides=list(args.overrides), images=args.images, steps=args.steps,
                           judge_epochs=args.judge_epochs, fashion_mnist=str(args.fashion_mnist),
                           workers=args.workers, seed=args.seed, data=str(args.data) if args.data else None,
                           sen=str(args.sen) if args.sen else None,
                           judges=str(args.judges) if args.judges else None)
    run_pipeline(args.out, opts, progress=shows_progress(args))
    print(summary_markdown(args.out), end="")
