"""Rebuild the figures: run every ``analyses/<name>.py`` script's ``main(quick=..., out=...)``.

Scripts live in the repository's ``analyses/`` folder (found from the package location, so this needs a
source checkout, e.g. ``pip install -e .``); each writes ``figures/<name>.png``, ``.pdf`` and CSV data.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .plotting import repo_root

__all__ = ["analyses_dir", "available", "default_out", "load", "run", "timing_summary"]


def default_out(quick: bool) -> Path:
    """Where figures go without ``out``: ``<repo>/figures`` for full runs, the git-ignored ``<repo>/figures/quick``
    for quick runs (so a quick run never overwrites the committed full-size figures)."""
    figures = repo_root() / "figures"
    return figures / "quick" if quick else figures


def analyses_dir() -> Path:
    """The ``analyses/`` folder of the source checkout."""
    path = repo_root() / "analyses"
    if not path.is_dir():
        raise FileNotFoundError(f"no analyses/ folder next to the package ({path}); reproduce needs a source "
                                "checkout installed with 'pip install -e .'")
    return path


def available() -> list[str]:
    """Names of the figure scripts, in file-name order (files starting with '_' are helpers, not figures)."""
    return sorted(p.stem for p in analyses_dir().glob("*.py") if not p.name.startswith("_"))


def load(name: str) -> ModuleType:
    """Import ``analyses/<name>.py`` as a module."""
    names = available()
    if name not in names:
        raise ValueError(f"unknown figure {name!r}; choose from {', '.join(names)}")
    path = analyses_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"toyrobust_analyses_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(only: list[str] | None = None, quick: bool = False, out: str | Path | None = None,
        report: Callable[[str], Any] | None = None) -> dict[str, list[Path]]:
    """Run the figure scripts (all, or those in ``only``) and return the written paths per figure.

    Args:
        only: figure names to run (default: all).
        quick: the quick size (seconds to a minute each) instead of the publication size.
        out: output folder (default :func:`default_out`: ``<repo>/figures``, or ``<repo>/figures/quick`` when
            ``quick``).
        report: called with one line of progress per figure (the command line prints it), and at the end with the
            lines of :func:`timing_summary` (the total and each figure's wall time).
    """
    if out is None:
        out = default_out(quick)
    names = available() if not only else only
    for name in names:
        if name not in available():
            raise ValueError(f"unknown figure {name!r}; choose from {', '.join(available())}")
    results, seconds = {}, {}
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        if report:
            report(f"[{i}/{len(names)}] {name} ...")
        paths = load(name).main(quick=quick, out=out)
        results[name] = list(paths)
        seconds[name] = time.perf_counter() - start
        if report:
            report(f"[{i}/{len(names)}] {name}: {seconds[name]:.1f} s -> " + ", ".join(str(p) for p in paths))
    if report:
        for line in timing_summary(seconds, what="figures"):
            report(line)
    return results


def timing_summary(seconds: dict[str, float], what: str = "figures") -> list[str]:
    """The closing lines of a run: the total wall time, then each stage's time and share, in run order.

    Example: ``times: 10 figures in 24.3 s`` followed by ``  adversarial_spheres   8.1 s  33%`` (one line each).
    """
    total = sum(seconds.values())
    width = max((len(k) for k in seconds), default=0)
    noun = what[:-1] if len(seconds) == 1 and what.endswith("s") else what
    lines = [f"times: {len(seconds)} {noun} in {total:.1f} s (wall clock)"]
    for name, sec in seconds.items():
        share = f"{100 * sec / total:3.0f}%" if total > 0 else "  -"
        lines.append(f"  {name:<{width}}  {sec:7.1f} s  {share}")
    return lines
