"""Shared figure plumbing for the ``analyses/`` scripts: one style, the Agg backend, paths from the repo root.

Every figure is written as ``figures/<name>.png``, ``.pdf`` and the data behind it as ``<name>.csv`` (or
several CSVs ``<name>-<part>.csv``), so a figure can be checked against the analytic engine and re-plotted.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # batch scripts never open windows

import matplotlib.pyplot as plt  # noqa: E402

from .sweeps import Store, sweep  # noqa: E402  (the sweep machinery sits below the figures' plumbing)

__all__ = ["STYLE", "COLORS", "repo_root", "figures_dir", "use_style", "save_figure", "write_csv", "step_path",
           "sweep_rows"]

#: the shared matplotlib style file
STYLE = Path(__file__).with_name("style.mplstyle")
#: Okabe-Ito colour-blind-safe palette, by role
COLORS = {"pos": "#0072B2", "neg": "#D55E00", "green": "#009E73", "pink": "#CC79A7", "orange": "#E69F00",
          "sky": "#56B4E9", "yellow": "#F0E442", "black": "#000000"}


def repo_root() -> Path:
    """The repository root (the folder holding ``analyses/``), found from this file's location."""
    return Path(__file__).resolve().parents[1]


def figures_dir(out: str | Path | None = None) -> Path:
    """``out`` or ``<repo>/figures``, created if missing."""
    path = Path(out) if out is not None else repo_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def step_path(x: Sequence[float], y: Sequence[float], breaks: Sequence[float]) -> tuple[list[float], list[float]]:
    """The path of a piecewise-constant function sampled at ``x`` (sorted), drawn as steps: between two samples
    with different values it jumps vertically at whichever of the two is a breakpoint in ``breaks`` (else at the
    right one), so a risk that jumps at an exact threshold is not drawn as a sloped line. NaN samples stay gaps.

    Returns:
        ``(xs, ys)`` for ``plt.plot``.
    """
    xs, ys = [float(x[0])], [float(y[0])]
    at = {float(b) for b in breaks}
    for x0, y0, x1, y1 in zip(x[:-1], y[:-1], x[1:], y[1:], strict=True):
        x0, y0, x1, y1 = float(x0), float(y0), float(x1), float(y1)
        if y0 != y1 and y0 == y0 and y1 == y1:  # a jump between two defined samples
            xb = x0 if x0 in at and x1 not in at else x1
            xs += [xb, xb]
            ys += [y0, y1]
        xs.append(x1)
        ys.append(y1)
    return xs, ys


def use_style() -> None:
    """Apply the toyrobust style (idempotent)."""
    plt.style.use(str(STYLE))


def write_csv(path: Path, columns: Mapping[str, Sequence[Any]]) -> Path:
    """Write equal-length columns to ``path`` as CSV with a header row."""
    names = list(columns)
    lengths = {len(columns[n]) for n in names}
    if len(lengths) != 1:
        raise ValueError(f"columns must have equal lengths, got {dict((n, len(columns[n])) for n in names)}")
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in zip(*(columns[n] for n in names)):
            writer.writerow([f"{v:.10g}" if isinstance(v, float) else v for v in row])
    return path


def save_figure(fig: Any, name: str, data: Mapping[str, Mapping[str, Sequence[Any]]], out: str | Path | None = None
                ) -> list[Path]:
    """Save ``fig`` as PNG and PDF and each table of ``data`` as CSV; close the figure; return the paths.

    Args:
        fig: a matplotlib figure.
        name: file stem, e.g. ``"tsipras_toy"``.
        data: ``{part: {column: values}}``; part ``""`` is written as ``<name>.csv``, others as
            ``<name>-<part>.csv``.
        out: output folder (default ``<repo>/figures``).
    """
    folder = figures_dir(out)
    paths = []
    for ext in ("png", "pdf"):
        path = folder / f"{name}.{ext}"
        fig.savefig(path, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(path)
    plt.close(fig)
    for part, columns in data.items():
        paths.append(write_csv(folder / (f"{name}.csv" if not part else f"{name}-{part}.csv"), columns))
    return paths


def sweep_rows(name: str, quick: bool, grid: dict, task: Any, *, executor: Any = None, max_workers: int = 0,
               resume: bool = False) -> list[dict]:
    """A figure's expensive data computed as a parameter sweep (:func:`toyrobust.sweep`) and read back.

    The rows live in ``<repo>/.scratch/sweeps/<name>[-quick]`` (ignored by git). By default the store is cleared
    first, so a rebuilt figure always reflects the current code; with ``resume`` a killed or earlier run is
    continued and its rows reused. ``executor`` (a process pool, a Dask client) computes the tasks elsewhere;
    ``max_workers=0`` (the default) runs them in this process.

    Args:
        name: the figure's name.
        quick: the quick size (its own store).
        grid: the sweep's grid (see :func:`toyrobust.sweep`).
        task: a registered task name or a function ``params -> dict`` (picklable by value for Dask).

    Returns:
        the rows (parameters and results), every one with status "ok", in the store's order.
    """
    store = repo_root() / ".scratch" / "sweeps" / f"{name}{'-quick' if quick else ''}"
    if not resume and store.exists():
        shutil.rmtree(store)
    if callable(task):
        # the store names its task by module: a script run as __main__ or imported by `toyrobust reproduce` must
        # name its task the same way, so the function is wrapped under the figure's own name
        fn = task

        def figure_task(params: dict, _fn: Any = fn) -> dict:
            return _fn(params)

        figure_task.__module__, figure_task.__qualname__ = "toyrobust.figures", name
        task = figure_task
    sweep(grid, task, store=store, executor=executor, max_workers=max_workers, progress=False)
    rows = Store(store).rows()
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} task(s) of the {name} sweep failed, e.g. {bad[0].get('error')}")
    return rows
