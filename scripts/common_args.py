"""The command line the analysis scripts share. They run as ``python scripts/<name>.py`` from the repository
root, which puts this folder on the import path: ``from common_args import ...``."""

import argparse


def script_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first line of the script's docstring."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


def resynthesis_parser(doc: str, n: int) -> argparse.ArgumentParser:
    """The options of a script that decodes a tokenized corpus with the unit vocoder: the folders ``--tokens``
    and ``--vocoder``, the ``--split`` (default test) and ``-n``, the number of its first utterances used."""
    ap = script_parser(doc)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--vocoder", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("-n", type=int, default=n)
    return ap
