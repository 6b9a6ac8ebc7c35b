"""What every ``speechvision`` command shares: the parser class, the declared commands (``@command``) that
``build_parser`` turns into parsers, the config options."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from speechvision.core.errors import MAX_SEED, InputError, OutputError


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
    writes: Writes | None = None  # what it writes, checked before it runs (:func:`check_writes`)
    progress: bool = False  # whether it draws progress bars, and so takes ``--no-progress``


@dataclass(frozen=True)
class Writes:
    """What a command writes at its option ``--<dest>``, checked by :func:`check_writes` before the command runs.

    ``kind``: ``"file"`` (refused: a folder there; an existing file, unless ``--force``), ``"folder"``
    (refused: a file there; a folder that holds any of ``names`` (without ``names``: anything), unless
    ``--force`` or, with ``resume``, ``--resume``) or ``"place"`` (refused: a file there; what a folder holds is
    the command's own business: a resumable build, images checked by name). ``force``: the help of the
    ``--force`` option the declaration adds ("": the default text; None: no ``--force``). ``suffix``: the
    usual extension of a file (for the message).
    """

    kind: str = "folder"
    force: str | None = ""
    dest: str = "out"
    suffix: str = ""
    names: tuple[str, ...] = ()
    resume: bool = False

    @property
    def option(self) -> str:
        return "--" + self.dest.replace("_", "-")

    @property
    def force_help(self) -> str:
        if self.force:
            return self.force
        return f"replace the file {self.option}" if self.kind == "file" else f"replace what {self.option} holds"


COMMANDS: dict[tuple[str, ...], Command] = {}  # every declared command, by path; the root is ``()``


def declare(*path: str, handler: Callable | None = None, arguments: Callable[[Parser], None] | None = None,
            dest: str | None = None, required: bool = True, order: tuple[str, ...] = (), example: str | None = None,
            writes: Writes | None = None, progress: bool = False, **parser_options) -> None:
    """Declare the command ``speechvision <path>`` (see :class:`Command`); ``example``, the arguments of an
    example call, becomes its epilog ``example: speechvision <path> <example>``; ``writes`` (see
    :class:`Writes`) adds ``--force`` and has its output checked before the handler runs; ``progress`` adds
    ``--no-progress`` (read by :func:`shows_progress`)."""
    if path in COMMANDS:
        raise ValueError(f"speechvision {' '.join(path)}: declared twice")
    if example is not None:
        parser_options["epilog"] = f"example: speechvision {' '.join(path)} {example}"
    COMMANDS[path] = Command(path, handler, arguments, dest, required, tuple(order), parser_options, writes, progress)


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
    if cmd.writes is not None and cmd.writes.force is not None:
        parser.add_argument("--force", action="store_true", help=f"{cmd.writes.force_help} (default: refuse)")
    if cmd.progress:  # no default, so that a sub-command's parser keeps a parent's ``--no-progress``
        parser.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                            help="no progress bars (for logs and CI)")
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
            p.set_defaults(handler=child.handler, writes=child.writes)


def shows_progress(args) -> bool:
    """Whether a command declared with ``progress=True`` draws its progress bars (no ``--no-progress``)."""
    return not getattr(args, "no_progress", False)


# ---- argument types: each checks one option's value in the parser (a usage error, exit code 2) ----------


def checked_number(text: str, kind: type, ok: Callable[[float], bool], want: str):
    """``text`` read as ``kind`` (int or a finite float) for which ``ok(value)`` holds; else an argparse
    type error saying ``<value> is not <want>`` (argparse names the option)."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{value:g} is not {want}" if kind is float else f"{value} is not {want}")
    return value


def positive_int(text: str) -> int:
    """A count of at least 1."""
    return checked_number(text, int, lambda v: v >= 1, "a count of at least 1")


def non_negative_int(text: str) -> int:
    """A count of at least 0."""
    return checked_number(text, int, lambda v: v >= 0, "a count of 0 or more")


def positive_float(text: str) -> float:
    """A finite number above 0 (durations, learning rates, temperatures)."""
    return checked_number(text, float, lambda v: v > 0, "above 0")


def fraction(text: str) -> float:
    """A finite number in [0, 1]."""
    return checked_number(text, float, lambda v: 0 <= v <= 1, "in [0, 1]")


def probability(text: str) -> float:
    """A finite number in (0, 1] (nucleus sampling's top-p)."""
    return checked_number(text, float, lambda v: 0 < v <= 1, "in (0, 1]")


def seed(text: str) -> int:
    """A seed: a whole number in [0, MAX_SEED]; a command that draws n samples checks ``seed + n - 1`` too."""
    return checked_number(text, int, lambda v: 0 <= v <= MAX_SEED, f"a seed (0..{MAX_SEED})")


def port(text: str) -> int:
    """A TCP port, 1..65535."""
    return checked_number(text, int, lambda v: 1 <= v <= 65535, "a TCP port (1..65535)")


# ---- outputs: never replaced without --force ------------------------------------------------------------


BUILD_FORCE = ("rebuild over a complete dataset or an unfinished build with other options (rerunning the same "
               "build resumes or repairs it)")  # --force of the dataset builders (``data ...``)


def check_parents(path: Path, option: str) -> None:
    """An existing ancestor of ``path`` that is a file, not a folder, is its own error."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{option} {path}: {parent} is a file, not a folder; choose another {option}")
            return


def check_output_file(path: Path, force: bool, option: str = "--out", suffix: str = "") -> None:
    """``path`` is to be written as a file (``suffix``: its usual extension): not a folder, and not an existing
    file unless ``force``.

    Raises:
        OutputError: naming the path and what to do.
    """
    check_parents(path, option)
    if path.is_dir():
        raise OutputError(f"{option} {path}: a folder exists there; {option} takes a file name (e.g. "
                          f"{path / ('out' + suffix)})")
    if path.exists() and not force:
        raise OutputError(f"{option} {path}: the file exists; pass --force to replace it, or choose another {option}")


def check_output_dir(path: Path, force: bool, option: str = "--out", *, names: tuple[str, ...] = (),
                     fix: str = "pass --force to replace its contents") -> None:
    """``path`` is to be written as a folder: not a file; unless ``force``, it must not hold any of ``names``
    (the files the command writes) or, without ``names``, anything at all (``fix``: what to do then).

    Raises:
        OutputError: naming the path and what to do.
    """
    check_parents(path, option)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: a file exists there; {option} takes a folder")
    if force or not path.is_dir():
        return
    held = [n for n in names if (path / n).exists()] if names else sorted(p.name for p in path.iterdir())
    if held:
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        raise OutputError(f"{option} {path}: the folder already holds {shown}; {fix}, or choose another {option}")


def check_exists(path: Path | None, option: str) -> None:
    """An input named by ``option`` exists (checked before work that would be lost when it does not).

    Raises:
        InputError: ``option <path>: no such file or folder``.
    """
    if path is not None and not path.exists():
        raise InputError(f"{option} {path}: no such file or folder")


def main_process() -> bool:
    """Whether this process writes the outputs: always, but under torchrun only rank 0 (the others start at
    the same time and only read; checking there would race with rank 0's first writes)."""
    return os.environ.get("RANK", "0") == "0"


def check_writes(args) -> None:
    """The output the command of ``args`` declared (``args.writes``, a :class:`Writes`), checked before it runs.

    Raises:
        OutputError: as :func:`check_output_file` and :func:`check_output_dir`.
        SystemExit: (a usage error) ``--resume`` together with ``--force``.
    """
    w: Writes | None = getattr(args, "writes", None)
    path = getattr(args, w.dest, None) if w is not None else None
    if path is None or not main_process():
        return
    force, resume = getattr(args, "force", False), w.resume and args.resume
    if resume and force:
        usage_error(f"--resume continues the run in {w.option} and --force replaces it: give one of them")
    if w.kind == "file":
        check_output_file(path, force, w.option, w.suffix)
    else:
        check_output_dir(path, force or resume or w.kind == "place", w.option, names=w.names,
                         fix="pass --resume to continue its run, --force to start a new one over it" if w.resume
                         else "pass --force to replace its contents")


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
