"""The default cross-check, built and run in one call: serially in this process, or its cases spread over worker
processes by the sweep machinery (:func:`toyrobust.sweep`'s process pool: spawned workers that ignore Ctrl-C, exit
when the driver dies, and are replaced, their cases resubmitted, when one crashes).

Every case keeps the seed it has in a serial run (the run's seed plus its position in the selection), so a
parallel run gives the same rows as the serial one (up to the verifier's time limits on bracketed rows, which
depend on the machine's speed in both). The workers rebuild the case list themselves; its trained networks come
from the network cache (:mod:`toyrobust.netcache`), filled by this process before any worker starts (with
``cache=False`` a private temporary cache, removed at the end, stands in for the user's).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from . import crosscheck as cc

__all__ = ["run_default", "case_task"]

#: the cases a worker process built, by (quick, trained, seed, device, cache): built once per worker
_WORKER_CASES: dict[tuple, list[cc.Case]] = {}


def _select(cases: list[cc.Case], only: str | None) -> list[int]:
    """Indices of the cases whose group or name contains ``only`` (case-insensitive; all for None)."""
    if only is None:
        return list(range(len(cases)))
    return [i for i, c in enumerate(cases) if only.lower() in f"{c.group} {c.name}".lower()]


def case_task(params: dict[str, Any]) -> dict[str, Any]:
    """The sweep task of one cross-check case (worker side): rebuild the case list (once per worker, networks from
    the cache), run case ``index`` with seed ``case_seed`` and return its :class:`~toyrobust.crosscheck.CaseResult`
    as JSON."""
    key = (params["quick"], params["trained"], params["seed"], params["device"], params["cache"])
    if key not in _WORKER_CASES:
        _WORKER_CASES[key] = cc.default_cases(quick=params["quick"], trained=params["trained"], seed=params["seed"],
                                              device=params["device"], cache=params["cache"])
    case = _WORKER_CASES[key][params["index"]]
    res = cc.run_case(case, n=params["n"], seed=params["case_seed"], level=params["level"], device=params["device"])
    return {"result": json.dumps(asdict(res))}


def _check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: run the cases in this process), got {workers!r}")
    return workers


def run_default(quick: bool = True, *, trained: bool = True, only: str | None = None, n: int = 20_000, seed: int = 0,
                level: float = 0.999, device: Any = "cpu", cache: str | os.PathLike | bool | None = None,
                workers: int = 0, progress: bool = False,
                report: Callable[[int, int, cc.CaseResult], Any] | None = None) -> cc.CrossCheckTable:
    """Build :func:`~toyrobust.crosscheck.default_cases` and run them (or those matching ``only``).

    Args:
        quick, trained: as :func:`~toyrobust.crosscheck.default_cases`.
        only: keep the cases whose group or name contains this text (case-insensitive); ValueError if none does.
        n, seed, level, device: as :func:`~toyrobust.crosscheck.run` (the case at position i of the selection,
            counting from 1, gets seed ``seed + i`` however it runs).
        cache: the network cache: None (the default folder), a folder, or False (none of the user's).
        workers: worker processes (0: the cases run one after the other in this process).
        progress: tqdm bars on stderr (the trainings' and one over the cases).
        report: ``report(i, total, result)`` after each case (in completion order with workers).

    Returns:
        a :class:`~toyrobust.crosscheck.CrossCheckTable` in the selection's order; its ``run_wall`` is the wall
        time of running the cases and ``workers`` the worker count.
    """
    workers = _check_workers(workers)
    with tempfile.TemporaryDirectory(prefix="toyrobust-crosscheck-") as tmp:
        if cache is False and workers:
            cache = os.path.join(tmp, "cache")  # the workers load the networks this process trains
        cases = cc.default_cases(quick=quick, trained=trained, seed=seed, device=device, progress=progress,
                                 cache=cache)
        chosen = _select(cases, only)
        if not chosen:
            raise ValueError(f"only={only!r} matches no case (cases are matched on their group and name)")
        start = time.perf_counter()
        if workers == 0:
            results = _run_here([cases[i] for i in chosen], n=n, seed=seed, level=level, device=device,
                                progress=progress, report=report)
        else:
            grid = {"zip": [{"index": chosen, "case_seed": [seed + k for k in range(1, len(chosen) + 1)]}],
                    "quick": quick, "trained": trained, "seed": seed, "device": str(device), "n": n,
                    "level": level, "cache": None if cache is None else os.fspath(cache)}
            results = _run_pool(grid, os.path.join(tmp, "store"), workers, progress, report)
        results.run_wall = time.perf_counter() - start
        results.workers = workers
    return results


def _run_here(cases: list[cc.Case], *, n: int, seed: int, level: float, device: Any, progress: bool,
              report: Callable | None) -> cc.CrossCheckTable:
    """The serial run, with a bar over the cases when ``progress``."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cases), unit="case", desc="crosscheck", file=sys.stderr, dynamic_ncols=True)

    def each(i: int, total: int, res: cc.CaseResult) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{res.group} | {res.classifier}: {res.verdict}", refresh=False)
        if report is not None:
            report(i, total, res)

    try:
        return cc.run(cases, n=n, seed=seed, level=level, device=device, report=each)
    finally:
        if bar is not None:
            bar.close()


def _run_pool(grid: dict[str, Any], store: str, workers: int, progress: bool,
              report: Callable | None) -> cc.CrossCheckTable:
    """The cases of ``grid`` on :func:`toyrobust.sweep`'s process pool; rows back in the selection's order."""
    from .sweeps import SweepTask, sweep

    total = len(grid["zip"][0]["index"])
    done: dict[int, cc.CaseResult] = {}

    def each(row: dict[str, Any]) -> None:
        if row.get("status") != "ok":
            return
        res = cc.CaseResult(**json.loads(row["result"]))
        done[row["index"]] = res
        if report is not None:
            report(len(done), total, res)

    # a task object named "crosscheck" (its bar reads sweep[crosscheck]); the workers import case_task by name
    out = sweep(grid, SweepTask("crosscheck", case_task), store=store, progress=progress, max_workers=workers,
                report=each)
    if out.errors or out.lost:
        raise RuntimeError(f"{out.errors + out.lost} of {total} cross-check cases failed in their worker: "
                           + "; ".join(out.error_messages[:3]))
    return cc.CrossCheckTable(done[i] for i in grid["zip"][0]["index"])
