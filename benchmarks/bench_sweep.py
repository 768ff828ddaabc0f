"""Sweep scaling from 1 to 2 local workers, and the per-task overhead of ``tr.sweep`` over the executors' own ``map``.

Every measurement is against a baseline in the same run, repeats alternated (so load from other processes hits
both), medians reported:

* scaling: the wall time of ``tr.sweep`` on a Monte Carlo grid (``estimate`` tasks: the Tsipras model, the exact
  attack, Linf radii x classifiers x seeds) on a warm default process pool with 1 worker against 2 workers (one
  torch thread each). Target: 2 workers >= 1.7x faster. Also reported: the mean number of busy workers of the
  2-worker sweeps (summed task wall times / sweep wall time): 2.0 means the scheduling never left a worker idle,
  so a speedup below that comes from the CPUs the machine gave the workers, not from the sweep.
* overhead: a grid of small closed-form tasks (``risk``: about 0.5 ms each) run by ``tr.sweep`` against the same
  task function on the same parameters run by

  - a plain loop in this process (``sweep(max_workers=0)``: the store and the bookkeeping only);
  - a bare ``concurrent.futures.ProcessPoolExecutor.map`` (spawn, ``--workers`` workers, one torch thread each,
    the default ``chunksize=1``; also with chunks of tasks / (4 workers), for reference): ``tr.sweep`` runs on a
    warm default pool of the same size. Target: <= 0.3 ms per task over ``map`` with ``chunksize=1``;
  - with ``--dask``: ``client.map`` + ``client.gather`` on a Dask LocalCluster (``--workers`` worker processes,
    one thread each, loopback), ``tr.sweep(executor=client)`` on the same cluster. Target: <= 2 ms per task.

  (sweep - baseline) / tasks is the cost of planning, the store (one durable JSON file per row) and the scheduling;
  it is negative where the sweep's batching beats the baseline's one round trip per task.

Pool and cluster start-up (spawning workers that import torch and sympy) is excluded: each is warmed first, and
the start-up time is reported separately.

    python benchmarks/bench_sweep.py [--quick] [--repeats 3] [--device cpu|cuda|auto] [--dask] [--workers 2]
        [--tiny-tasks 200] [--skip-scaling]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toyrobust.sweeps import Store, default_executor, plan, sweep  # noqa: E402
from toyrobust.sweeps import store as store_module  # noqa: E402
from toyrobust.sweeps.runner import _init_worker  # noqa: E402
from toyrobust.sweeps.tasks import resolve_task, risk_task  # noqa: E402


def warm(n: int) -> int:
    """Runs in a worker: import the toolkit and run one small estimate and one risk (caches built), then wait so
    that every worker of the pool gets one."""
    from toyrobust.sweeps.tasks import estimate_task

    estimate_task({"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": "bayes", "threat": "linf:0.5",
                   "attack": "exact", "n": 1000, "seed": 0})
    risk_task({"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": "robust", "threat": "linf:0.5"})
    time.sleep(0.5)
    return os.getpid()


def warm_pool(ex: Executor, workers: int) -> float:
    t = time.perf_counter()
    pids = {f.result() for f in [ex.submit(warm, i) for i in range(workers)]}
    if len(pids) != workers:
        raise RuntimeError(f"warm-up reached {len(pids)} of {workers} workers")
    return time.perf_counter() - t


def warm_dask(client, workers: int) -> float:
    t = time.perf_counter()
    pids = set(client.gather(client.map(warm, range(workers), pure=False)))
    if len(pids) != workers:
        raise RuntimeError(f"warm-up reached {len(pids)} of {workers} Dask workers")
    return time.perf_counter() - t


BUSY: list[float] = []  # per sweep: summed task wall times / sweep wall time (mean number of busy workers)


def timed_sweep(grid: dict, task: str, executor, folder: Path) -> float:
    store = Path(tempfile.mkdtemp(dir=folder))
    shutil.rmtree(store)
    t = time.perf_counter()
    res = sweep(grid, task, store=store, executor=executor, progress=False)
    seconds = time.perf_counter() - t
    if res.ok != res.total:
        raise RuntimeError(f"{res.total - res.ok} tasks failed: {res.error_messages[:3]}")
    rows = list(Store(store).iter_rows())
    if len(rows) != res.total:
        raise RuntimeError(f"{len(rows)} rows on disk for {res.total} tasks")
    BUSY.append(sum(row["wall_time"] for row in rows) / seconds)
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


def timed_map(mapper, params: list[dict]) -> float:
    """Wall time of ``mapper(risk_task, params)`` (a list of result dicts, checked)."""
    t = time.perf_counter()
    results = mapper(risk_task, params)
    seconds = time.perf_counter() - t
    if len(results) != len(params) or not all("value" in r for r in results):
        raise RuntimeError("the baseline map lost results")
    return seconds


def _r(seconds: list[float]) -> list[float]:
    return [round(x, 3) for x in seconds]


def _ms(total_s: float, base_s: float, tasks: int) -> float:
    return round(1e3 * (total_s - base_s) / tasks, 3)


def measure_scaling(mc_grid: dict, repeats: int, pools: dict, folder: Path, n: int) -> dict:
    one, two, busy2 = [], [], []
    for _ in range(repeats):
        one.append(timed_sweep(mc_grid, "estimate", pools[1], folder))
        two.append(timed_sweep(mc_grid, "estimate", pools[2], folder))
        busy2.append(BUSY[-1])
    tasks = len(plan(mc_grid, "estimate")[2])
    return {"tasks": tasks, "points_per_task": n, "seconds_1_worker": [round(s, 2) for s in one],
            "seconds_2_workers": [round(s, 2) for s in two],
            "speedup_median": round(statistics.median(one) / statistics.median(two), 3),
            "speedup_best": round(min(one) / min(two), 3), "target": 1.7,
            # whether the sweep keeps both workers busy, whatever CPU time the machine gives them
            "busy_workers_2": [round(b, 2) for b in busy2]}


def sweep_without_flushes(tiny_grid: dict, pool: Executor, folder: Path) -> float:
    """A diagnostic: the sweep with the store's fdatasync and folder fsync turned off (rows still atomic)."""
    saved = store_module._datasync, store_module._fsync_dir
    store_module._datasync = store_module._fsync_dir = lambda _: None
    try:
        return timed_sweep(tiny_grid, "risk", pool, folder)
    finally:
        store_module._datasync, store_module._fsync_dir = saved


def measure_pool_overhead(tiny_grid: dict, repeats: int, workers: int, pool: Executor, folder: Path) -> dict:
    """tr.sweep in this process and on the warm default pool, against a plain loop and a bare
    ProcessPoolExecutor.map (chunksize 1 and chunked) of the same function, alternated."""
    params = [dict(t.params) for t in plan(tiny_grid, "risk")[2]]
    ntiny = len(params)
    chunk = max(1, ntiny // (4 * workers))
    bare = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=(1,))
    startup = warm_pool(bare, workers)
    plain_loop(tiny_grid, "risk")  # warm this process's closed-form caches
    in_proc = default_executor(0)
    loops, local, pooled, mapped, chunked, unflushed = [], [], [], [], [], []
    try:
        for i in range(repeats):
            loops.append(plain_loop(tiny_grid, "risk"))
            local.append(timed_sweep(tiny_grid, "risk", in_proc, folder))
            order = [0, 1] if i % 2 == 0 else [1, 0]
            for j in order:
                if j == 0:
                    mapped.append(timed_map(lambda f, p: list(bare.map(f, p)), params))
                    chunked.append(timed_map(lambda f, p: list(bare.map(f, p, chunksize=chunk)), params))
                else:
                    pooled.append(timed_sweep(tiny_grid, "risk", pool, folder))
                    if hasattr(store_module, "_datasync"):
                        unflushed.append(sweep_without_flushes(tiny_grid, pool, folder))
    finally:
        bare.shutdown()
    loop_s, sweep_s = statistics.median(loops), statistics.median(pooled)
    return {"tasks": ntiny, "workers": workers, "bare_pool_startup_s": round(startup, 2),
            "plain_loop_ms_per_task": round(1e3 * loop_s / ntiny, 3),
            "in_process_sweep_over_loop_ms_per_task": _ms(statistics.median(local), loop_s, ntiny),
            "pool_sweep_ms_per_task": round(1e3 * sweep_s / ntiny, 3),
            "pool_map_ms_per_task": round(1e3 * statistics.median(mapped) / ntiny, 3),
            "pool_map_chunked_ms_per_task": round(1e3 * statistics.median(chunked) / ntiny, 3),
            "map_chunksize": chunk,
            "sweep_over_pool_map_ms_per_task": _ms(sweep_s, statistics.median(mapped), ntiny),
            "sweep_over_pool_map_chunked_ms_per_task": _ms(sweep_s, statistics.median(chunked), ntiny),
            "target_over_pool_map_ms": 0.3,
            # diagnostic, not a mode of tr.sweep: the same sweep with the store's flushes (fdatasync, folder fsync)
            # turned off, i.e. what the durability against a power loss costs
            "pool_sweep_without_flushes_ms_per_task": round(1e3 * statistics.median(unflushed) / ntiny, 3)
            if unflushed else None,
            "seconds": {"loop": _r(loops), "in_process_sweep": _r(local), "pool_sweep": _r(pooled),
                        "pool_map": _r(mapped), "pool_map_chunked": _r(chunked), "pool_sweep_unflushed": _r(unflushed)}}


def measure_dask_overhead(tiny_grid: dict, repeats: int, workers: int, folder: Path) -> dict:
    """tr.sweep(executor=client) against client.map + gather of the same function, same LocalCluster, alternated."""
    from distributed import Client, LocalCluster

    params = [dict(t.params) for t in plan(tiny_grid, "risk")[2]]
    ntiny = len(params)
    swept, mapped = [], []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        startup = warm_dask(client, workers)

        def dask_map(fn, ps):
            return client.gather(client.map(fn, ps, pure=False))

        for i in range(repeats):
            for j in ([0, 1] if i % 2 == 0 else [1, 0]):
                if j == 0:
                    mapped.append(timed_map(dask_map, params))
                else:
                    swept.append(timed_sweep(tiny_grid, "risk", client, folder))
    sweep_s, map_s = statistics.median(swept), statistics.median(mapped)
    return {"tasks": ntiny, "workers": workers, "cluster_warmup_s": round(startup, 2),
            "dask_sweep_ms_per_task": round(1e3 * sweep_s / ntiny, 3),
            "dask_map_ms_per_task": round(1e3 * map_s / ntiny, 3),
            "sweep_over_dask_map_ms_per_task": _ms(sweep_s, map_s, ntiny), "target_ms": 2.0,
            "seconds": {"dask_sweep": _r(swept), "dask_map": _r(mapped)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grids (about a minute)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="device of the Monte Carlo tasks (cpu, cuda, auto)")
    parser.add_argument("--dask", action="store_true", help="also measure the overhead on a Dask LocalCluster")
    parser.add_argument("--workers", type=int, default=2, help="workers of the overhead measurements")
    parser.add_argument("--tiny-tasks", type=int, default=200, help="tasks of the overhead grid")
    parser.add_argument("--skip-scaling", action="store_true", help="only the overhead measurements")
    args = parser.parse_args()

    n = 100_000 if args.quick else 400_000
    mc_grid = {"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": ["bayes", "robust"],
               "threat": ["linf:0.5", "linf:1.5"], "attack": "exact", "n": n, "seed": [0, 1] if args.quick else
               [0, 1, 2, 3], "device": args.device}
    eps = [round(0.001 * i, 3) for i in range(1, args.tiny_tasks + 1)]
    tiny_grid = {"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": "robust", "threat": [f"linf:{e}" for e in eps]}
    out: dict = {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        pools = {}
        for w in sorted({1, 2, args.workers} - ({1, 2} if args.skip_scaling else set()) | {args.workers}):
            pools[w] = default_executor(w, threads_per_worker=1)
            out[f"pool_startup_s_{w}"] = round(warm_pool(pools[w], w), 2)
        if not args.skip_scaling:
            out["scaling"] = measure_scaling(mc_grid, args.repeats, pools, folder, n)
        out["overhead"] = measure_pool_overhead(tiny_grid, args.repeats, args.workers, pools[args.workers], folder)
        for ex in pools.values():
            ex.shutdown()
        if args.dask:
            out["dask"] = measure_dask_overhead(tiny_grid, args.repeats, args.workers, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
