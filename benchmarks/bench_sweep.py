"""Sweep scaling from 1 to 2 local workers, and the per-task overhead of the store and the scheduling.

Two measurements, each against a baseline in the same run (alternating, so load from other processes hits both):

* scaling: the wall time of ``tr.sweep`` on a Monte Carlo grid (``estimate`` tasks: the Tsipras model, the exact
  attack, Linf radii x classifiers x seeds) on a warm default process pool with 1 worker against 2 workers (one
  torch thread each). Target: 2 workers >= 1.7x faster. Also reported: the mean number of busy workers of the
  2-worker sweeps (summed task wall times / sweep wall time): 2.0 means the scheduling never left a worker idle,
  so a speedup below that comes from the CPUs the machine gave the workers, not from the sweep.
* overhead: a grid of tiny closed-form tasks (``risk``: microseconds each) run by ``tr.sweep`` against the same
  task functions called in a plain loop in this process; (sweep - loop) / tasks is the cost of planning, the
  store (one fsync'ed JSON file per row) and the scheduling. Measured in this process (``max_workers=0``: the
  store and the bookkeeping only) and on a warm 1-worker process pool (adds pickling and the round trip to the
  worker). Target < 5 ms per task. With ``--dask``, also on a 1-worker Dask LocalCluster (loopback).

Pool start-up (spawning workers that import torch and sympy) is excluded: each pool is warmed first, and the
start-up time is reported separately.

    python benchmarks/bench_sweep.py [--quick] [--repeats 3] [--device cpu|cuda|auto] [--dask]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toyrobust.sweeps import Store, default_executor, plan, sweep  # noqa: E402
from toyrobust.sweeps.tasks import resolve_task  # noqa: E402


def warm(n: int) -> int:
    """Runs in a worker: import the toolkit and run one small estimate (caches built), then wait so that every
    worker of the pool gets one."""
    from toyrobust.sweeps.tasks import estimate_task

    estimate_task({"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": "bayes", "threat": "linf:0.5",
                   "attack": "exact", "n": 1000, "seed": 0})
    time.sleep(0.5)
    return os.getpid()


def warm_pool(ex: Executor, workers: int) -> float:
    t = time.perf_counter()
    pids = {f.result() for f in [ex.submit(warm, i) for i in range(workers)]}
    if len(pids) != workers:
        raise RuntimeError(f"warm-up reached {len(pids)} of {workers} workers")
    return time.perf_counter() - t


BUSY: list[float] = []  # per sweep: summed task wall times / sweep wall time (mean number of busy workers)


def timed_sweep(grid: dict, task: str, executor: Executor, folder: Path) -> float:
    store = Path(tempfile.mkdtemp(dir=folder))
    shutil.rmtree(store)
    t = time.perf_counter()
    res = sweep(grid, task, store=store, executor=executor, progress=False)
    seconds = time.perf_counter() - t
    if res.ok != res.total:
        raise RuntimeError(f"{res.total - res.ok} tasks failed: {res.error_messages[:3]}")
    BUSY.append(sum(row["wall_time"] for row in Store(store).iter_rows()) / seconds)
    shutil.rmtree(store)
    return seconds


def plain_loop(grid: dict, task: str) -> float:
    """The baseline: the same task functions on the same parameters, in a loop in this process."""
    _, _, tasks = plan(grid, task)
    fn = resolve_task(task)
    t = time.perf_counter()
    for spec in tasks:
        fn(dict(spec.params))
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grids (about a minute)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="device of the Monte Carlo tasks (cpu, cuda, auto)")
    parser.add_argument("--dask", action="store_true", help="also measure the overhead on a Dask LocalCluster")
    args = parser.parse_args()

    n = 100_000 if args.quick else 400_000
    mc_grid = {"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": ["bayes", "robust"],
               "threat": ["linf:0.5", "linf:1.5"], "attack": "exact", "n": n, "seed": [0, 1] if args.quick else
               [0, 1, 2, 3], "device": args.device}
    eps = [round(0.001 * i, 3) for i in range(1, (201 if args.quick else 501))]
    tiny_grid = {"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": "robust", "threat": [f"linf:{e}" for e in eps]}
    load_before = os.getloadavg()
    out: dict = {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before]}
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        pools = {}
        for w in (1, 2):
            pools[w] = default_executor(w, threads_per_worker=1)
            out[f"pool_startup_s_{w}"] = round(warm_pool(pools[w], w), 2)
        # -------------------------------------------------------------- scaling 1 -> 2 workers
        one, two, busy2 = [], [], []
        for _ in range(args.repeats):
            one.append(timed_sweep(mc_grid, "estimate", pools[1], folder))
            two.append(timed_sweep(mc_grid, "estimate", pools[2], folder))
            busy2.append(BUSY[-1])
        tasks = len(plan(mc_grid, "estimate")[2])
        out["scaling"] = {"tasks": tasks, "points_per_task": n, "seconds_1_worker": [round(s, 2) for s in one],
                          "seconds_2_workers": [round(s, 2) for s in two],
                          "speedup_median": round(statistics.median(one) / statistics.median(two), 3),
                          "speedup_best": round(min(one) / min(two), 3), "target": 1.7,
                          # whether the sweep keeps both workers busy, whatever CPU time the machine gives them
                          "busy_workers_2": [round(b, 2) for b in busy2]}
        # -------------------------------------------------------------- per-task overhead
        ntiny = len(plan(tiny_grid, "risk")[2])
        plain_loop(tiny_grid, "risk")  # warm this process's closed-form caches
        in_proc = default_executor(0)
        loops, local, pooled = [], [], []
        for _ in range(args.repeats):
            loops.append(plain_loop(tiny_grid, "risk"))
            local.append(timed_sweep(tiny_grid, "risk", in_proc, folder))
            pooled.append(timed_sweep(tiny_grid, "risk", pools[1], folder))
        loop_s = statistics.median(loops)
        out["overhead"] = {
            "tasks": ntiny, "plain_loop_ms_per_task": round(1e3 * loop_s / ntiny, 3),
            "in_process_ms_per_task": round(1e3 * (statistics.median(local) - loop_s) / ntiny, 3),
            "pool_1_worker_ms_per_task": round(1e3 * (statistics.median(pooled) - loop_s) / ntiny, 3),
            "target_ms": 5.0}
        for ex in pools.values():
            ex.shutdown()
        if args.dask:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.submit(warm, 0, pure=False).result()
                dask_s = [timed_sweep(tiny_grid, "risk", client, folder) for _ in range(args.repeats)]
            out["overhead"]["dask_1_worker_ms_per_task"] = round(1e3 * (statistics.median(dask_s) - loop_s) / ntiny,
                                                                 3)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
