"""The project's error base: any :class:`SpeechvisionError` is a user-facing, one-line problem.

What is checked, by class, and the exit codes of the ``speechvision`` command: docs/errors.md.
"""

from __future__ import annotations

# The largest seed a torch.Generator takes as a signed 64-bit integer; a call that draws n images from
# seed s uses s, s + 1, ..., s + n - 1, so s may be at most MAX_SEED - (n - 1).
MAX_SEED = 2**63 - 1


class SpeechvisionError(Exception):
    """Base of every error the CLI prints as one line (bad input, missing file, bad config)."""


class InputError(SpeechvisionError, ValueError):
    """A value given to a command, a function or the web page is out of its range; the message names it."""


class OutputError(SpeechvisionError, ValueError):
    """An output would replace an earlier one (without ``--force``), or the output path is of the wrong kind
    (a file where a folder is wanted, or a folder where a file is wanted); the message names the path."""


# OS errors about a path (a folder where a file is wanted, ...): their message names the file, so the
# CLI prints them as one line too; the checks before any work should have caught them first.
PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def is_user_error(e: BaseException) -> bool:
    return isinstance(e, (SpeechvisionError, *PATH_ERRORS))


def one_line(e: BaseException) -> str:
    """The message of ``e`` as one line: its first line; for an OS error about a path, ``<path>: <reason>``."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror[0].lower()}{e.strerror[1:]}"
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


def check_seed_range(seed: int, count: int = 1, option: str = "seed") -> int:
    """``seed`` as an int, when the ``count`` seeds ``seed``, ..., ``seed + count - 1`` all lie in
    ``[0, MAX_SEED]``.

    Raises:
        InputError: a seed that is not a whole number, negative, or too large for ``count`` images (names
            ``option``).
    """
    try:
        value = int(seed)
        whole = value == seed
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise InputError(f"{option} {seed!r}: a seed is a whole number from 0 to {MAX_SEED - count + 1}")
    if not 0 <= value <= MAX_SEED - (count - 1):
        shown = f"{seed:g}" if isinstance(seed, float) else value
        raise InputError(f"{option} {shown}: out of range; " + (
            f"with {count} images a seed lies in 0..{MAX_SEED - count + 1}" if count > 1 else
            f"a seed lies in 0..{MAX_SEED}"))
    return value
