"""The ``toyrobust`` console script: ``--help`` and ``--version`` answered without loading the toolkit (no sympy,
scipy or torch: a few milliseconds), every command handed to :mod:`toyrobust.cli`.

The top of the command line: it imports :mod:`toyrobust.cli` (when a command runs) and :mod:`toyrobust.clibase`
(the table of commands), and nothing imports it.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .clibase import COMMANDS, DESCRIPTION  # standard library only: --help stays a few milliseconds

__all__ = ["COMMANDS", "DESCRIPTION", "main", "top_parser"]


def top_parser() -> argparse.ArgumentParser:
    """The top-level parser: the commands by name (their own options live in :func:`toyrobust.cli.build_parser`)."""
    parser = argparse.ArgumentParser(prog="toyrobust", description=DESCRIPTION,
                                     epilog="toyrobust COMMAND --help documents each command")
    parser.add_argument("--version", action="version", version=f"toyrobust {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``toyrobust`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "--version"):
        try:
            top_parser().parse_args(argv[:1])  # prints the help or the version
        except SystemExit as done:
            return int(done.code or 0)
    # imported here, not at the top, to keep --help and --version fast: cli loads the toolkit (sympy, torch; seconds)
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
