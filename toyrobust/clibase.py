"""The command line's lowest layer: its error type, its parser class, the table of commands and the output checks.

Everything here is standard library only, so the console script (:mod:`toyrobust.launcher`) answers ``--help`` and
``--version`` from this module without loading sympy, scipy or torch. The spec parsers the commands share (a
distribution, a classifier, a threat, a device from their command-line text) are one layer up, in
:mod:`toyrobust.clispecs`; the commands themselves in :mod:`toyrobust.cli`, :mod:`toyrobust.defenses.evaluate`
(``defend``) and :mod:`toyrobust.sweeps.command` (``sweep``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["UsageError", "UsageParser", "DESCRIPTION", "COMMANDS", "MAX_SEED", "one_line", "check_output_file",
           "check_output_folder"]

DESCRIPTION = "Analytic and Monte Carlo adversarial robustness on toy distributions."

#: every command and its one-line help (the launcher's ``--help`` and ``cli.build_parser`` read the same lines)
COMMANDS: dict[str, str] = {
    "describe": "print a distribution, its support, its projection rule and its Bayes rule",
    "risk": "print the closed-form risk of a classifier (value, formula, method)",
    "bounds": "print the analytic bounds for a distribution and threat",
    "reproduce": "rebuild the figures from the analyses/ scripts",
    "crosscheck": "analytic risks next to Monte Carlo estimates from real attacks, with verdicts",
    "defend": "defenses under naive and adaptive attacks, next to the optimal adversarial risk",
    "sweep": "run a parameter grid (risks, Monte Carlo shards, trainings) into a crash-safe store",
    "eps-analysis": "seed 001's eps analysis on real images (your MNIST files or the bundled 8x8 digits)",
}

#: the largest --seed (cases derive seeds by adding small offsets; torch seeds are 64-bit)
MAX_SEED = 2**62


class UsageError(Exception):
    """A one-line user error: printed without a traceback, exit status 2."""


class UsageParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line), not argparse's usage block and exit."""

    def error(self, message: str) -> None:  # argparse's default prints the whole usage block
        raise UsageError(message)


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def check_output_file(flag: str, path: str) -> Path:
    """Refuse, before any work, an output file that cannot be written: its folder must exist and the file must
    open for writing (a file created by the probe is removed again)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UsageError(f"{flag} {path!r} is a folder; give a file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{flag} {path!r}: folder {str(folder)!r} does not exist")
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as err:
        raise UsageError(f"{flag} {path!r} cannot be written: {err.strerror or err}") from None
    if not existed:
        target.unlink()
    return target


def check_output_folder(flag: str, path: str | Path) -> Path:
    """Refuse, before any work, an output folder that cannot be created or written to."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag} {str(path)!r} cannot be created: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {str(path)!r} is not writable")
    return folder
