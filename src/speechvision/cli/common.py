"""What every ``speechvision`` command shares: the parser class, the declared commands (``@command``) that
``build_parser`` turns into parsers, the config options."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial


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


@dataclass
class Command:
    """One declared command, ``speechvision <path>``: its handler, its options and, for a group, how its
    sub-commands are parsed. ``parser_options`` go to ``add_parser`` (help, epilog, description, ...)."""

    path: tuple[str, ...]
    handler: Callable | None = None  # runs the command: ``args.handler(args)``
    arguments: Callable[[Parser], None] | None = None  # adds its options, when the command is used
    dest: str | None = None  # with sub-commands: the name of the one given is stored in ``args.<dest>``
    required: bool = True  # whether a sub-command must be given
    order: tuple[str, ...] = ()  # the sub-commands in the order of ``--help`` (default: declaration order)
    parser_options: dict = field(default_factory=dict)


COMMANDS: dict[tuple[str, ...], Command] = {}  # every declared command, by path; the root is ``()``


def declare(*path: str, handler: Callable | None = None, arguments: Callable[[Parser], None] | None = None,
            dest: str | None = None, required: bool = True, order: tuple[str, ...] = (), example: str | None = None,
            **parser_options) -> None:
    """Declare the command ``speechvision <path>`` (see :class:`Command`); ``example``, the arguments of an
    example call, becomes its epilog ``example: speechvision <path> <example>``."""
    if path in COMMANDS:
        raise ValueError(f"speechvision {' '.join(path)}: declared twice")
    if example is not None:
        parser_options["epilog"] = f"example: speechvision {' '.join(path)} {example}"
    COMMANDS[path] = Command(path, handler, arguments, dest, required, tuple(order), parser_options)


def command(*path: str, **kwargs) -> Callable:
    """The decorator form of :func:`declare`: the decorated function is the command's handler."""
    def decorate(handler: Callable) -> Callable:
        declare(*path, handler=handler, **kwargs)
        return handler
    return decorate


def add_arguments(parser: Parser, cmd: Command) -> None:
    """The options of ``cmd``, then its sub-commands (each one's options are added when it is used)."""
    if cmd.arguments is not None:
        cmd.arguments(parser)
    children = [c for c in COMMANDS.values() if c.path and c.path[:-1] == cmd.path]
    if not children:
        return
    names = [c.path[-1] for c in children]
    if cmd.order and sorted(cmd.order) != sorted(names):
        raise ValueError(f"speechvision {' '.join(cmd.path)}: the order {cmd.order} is not the declared "
                         f"sub-commands {names}")
    children.sort(key=lambda c: cmd.order.index(c.path[-1]) if cmd.order else 0)
    sub = parser.add_subparsers(dest=cmd.dest, required=cmd.required, parser_class=Parser)
    for child in children:
        p = sub.add_parser(child.path[-1], arguments=partial(add_arguments, cmd=child), **child.parser_options)
        if child.handler is not None:
            p.set_defaults(handler=child.handler)


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
