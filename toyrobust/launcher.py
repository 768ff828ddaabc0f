"""The ``toyrobust`` console script: ``--help`` and ``--version`` answered without loading the toolkit (no sympy,
scipy or torch: a few milliseconds), every command handed to :mod:`toyrobust.cli`."""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["COMMANDS", "DESCRIPTION", "main", "top_parser"]

DESCRIPTION = "Analytic and Monte Carlo adversarial robustness on toy distributions."

#: every command and its one-line help (``cli.build_parser`` uses the same lines; a test keeps them equal)
COMMANDS: dict[str, str] = {
    "describe": "print a distribution, its support, its projection rule and its Bayes rule",
    "risk": "print the closed-form risk of a classifier (value, formula, method)",
    "bounds": "print the analytic bounds for a distribution and threat",
    "reproduce": "rebuild the figures from the analyses/ scripts",
    "crosscheck": "analytic risks next to Monte Carlo estimates from real attacks, with verdicts",
    "defend": "defenses under naive and adaptive attacks, next to the optimal adversarial risk",
    "sweep": "run a parameter grid (risks, Monte Carlo shards, trainings) into a crash-safe store",
}


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
    from .cli import main as cli_main  # the toolkit itself, loaded only for a command

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
