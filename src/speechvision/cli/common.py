"""What every ``speechvision`` command shares: the parser class, declaring a command, the config options."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit code 2).

    ``arguments``, when given, is a function that adds this parser's arguments; it runs the first time the
    parser parses or prints its help. The option lists come from the library modules (presets, fusions,
    visual encoders, emotions), which import torch; so they are imported only for the command in use, and
    ``speechvision --help`` stays fast.
    """

    def __init__(self, *args, arguments: Callable[[Parser], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending_arguments = arguments

    def add_pending_arguments(self) -> None:
        if self.pending_arguments is not None:
            add, self.pending_arguments = self.pending_arguments, None
            add(self)

    def parse_known_args(self, args=None, namespace=None):
        self.add_pending_arguments()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.add_pending_arguments()
        return super().format_usage()

    def format_help(self) -> str:
        self.add_pending_arguments()
        return super().format_help()

    def error(self, message):  # usage errors: one line, exit code 2
        self.exit(2, f"speechvision: usage error: {message} (see `{self.prog} --help`)\n")


def add_commands(parser: argparse.ArgumentParser, dest: str, required: bool = True) -> argparse.Action:
    """The sub-commands of ``parser``; the name of the one given is stored in ``args.<dest>``."""
    return parser.add_subparsers(dest=dest, required=required, parser_class=Parser)


def add_command(sub: argparse.Action, name: str, handler: Callable | None = None,
                arguments: Callable[[Parser], None] | None = None, **kwargs) -> Parser:
    """Declare the command ``name``: ``arguments(parser)`` adds its options (when it is used), and
    ``handler(args)`` runs it (``args.handler``); ``kwargs`` go to ``add_parser`` (help, epilog, ...)."""
    p = sub.add_parser(name, arguments=arguments, **kwargs)
    if handler is not None:
        p.set_defaults(handler=handler)
    return p


def usage_error(message: str) -> None:
    """A usage error found after parsing: one line on stderr, exit code 2 (as argparse's own)."""
    print(f"speechvision: usage error: {message}", file=sys.stderr)
    raise SystemExit(2)


def print_json(value) -> None:
    print(json.dumps(value, indent=2))


def add_config_options(p: argparse.ArgumentParser) -> None:
    """--preset and --set: an S2IGAN config (``resolved_config`` turns them into a ``Config``)."""
    from speechvision.s2igan.config import PRESETS, Config

    p.add_argument("--preset", default=Config.preset, help=f"config preset ({', '.join(PRESETS)})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set sen.epochs=5 (repeatable)")


def resolved_config(args):
    """The ``Config`` of ``--preset`` with the ``--set`` overrides applied."""
    from speechvision.s2igan.config import apply_overrides, preset

    return apply_overrides(preset(args.preset), args.overrides)
