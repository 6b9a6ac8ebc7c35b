"""The ``speechvision`` command: thin argument parsing over the library; errors as one line.

The commands of each system are declared on their handlers (``@command``) in their own module:
:mod:`speechvision.cli.s2igan`, :mod:`speechvision.cli.s2igan_train`, :mod:`speechvision.cli.s2igan_evaluate`
and :mod:`speechvision.cli.s2igan_pipeline` (speech-to-image),
:mod:`speechvision.cli.avlm` (the audio-visual LM), over :mod:`speechvision.cli.common`. Here: the root and
the ``data`` group the two systems share, the order of ``--help``, and :func:`main`, the one error policy.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial

from speechvision.cli import avlm, s2igan, s2igan_evaluate, s2igan_pipeline, s2igan_train
from speechvision.cli.common import COMMANDS, Parser, add_arguments, check_writes, declare

__all__ = ["build_parser", "main"]

EPILOG = """examples:
  speechvision data spoken-fashion --images 200 --out /tmp/sf      # small built-in dataset (about 1 minute)
  speechvision synth "a red sneaker" --voice espeak-f1 --out red.wav
  speechvision features red.wav                                    # log-mel shape (T, 40)
  speechvision train sen --data /tmp/sf --out runs/sen             # speech embedding network
  speechvision retrieve --checkpoint runs/sen --speech red.wav --data /tmp/sf -k 5
  speechvision config --preset cub --set sen.epochs=10              # print a resolved config
  speechvision demo
"""


SYSTEMS = (s2igan, s2igan_train, s2igan_evaluate, s2igan_pipeline, avlm)  # the modules whose declarations make up the command tree

declare(dest="command", order=("data", "synth", "voices", "features", "config", "train", "generate", "say", "export",
                               "retrieve", "evaluate", "pipeline", "serve", "demo", "speechlm", "avlm"))
declare("data", dest="dataset", order=("spoken-fashion", "spoken-fashion-robust", "speech-augment", "cub", "oxford",
                                      "flickr8k", "spoken-emotion", "av-emotion"),
        help="build a dataset folder (manifest + audio)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; each command's options are added when it is used (see ``common.Parser``)."""
    from speechvision import __version__

    parser = Parser(prog="speechvision", description="Speech-to-image generation (S2IGAN) and audio-visual "
                    "speech modelling.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                    arguments=partial(add_arguments, cmd=COMMANDS[()]))
    parser.add_argument("--version", action="version", version=f"speechvision {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Usage errors (an option's value or a combination of options) are one line
    ``speechvision: usage error: ...`` and exit code 2; any other error is one line ``speechvision: error: ...``
    on stderr and exit code 1 (SPEECHVISION_DEBUG=1 re-raises it instead); Ctrl+C is exit code 130. The
    classes of checks: docs/errors.md."""
    args = build_parser().parse_args(argv)
    try:
        check_writes(args)
        args.handler(args)
    except KeyboardInterrupt:
        print("speechvision: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # every error becomes one line, never a traceback
        from speechvision.core.errors import is_user_error, one_line

        msg = one_line(e)
        if not is_user_error(e):
            msg = f"{type(e).__name__}: {msg} (this looks like a bug; rerun with SPEECHVISION_DEBUG=1 for a traceback)"
        if os.environ.get("SPEECHVISION_DEBUG"):
            raise
        print(f"speechvision: error: {msg}", file=sys.stderr)
        return 1
    return 0
