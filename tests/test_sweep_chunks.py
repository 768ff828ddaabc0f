"""Sweeps submit tasks in chunks (issue 20 item 4): several tasks per submission, rows written in durable groups.

References are independent of the chunking: the same sweep with one task per submission, the task functions called
directly in a plain loop (tr.estimate_risk for the Monte Carlo rows), and an uninterrupted run for the kill test.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

import toyrobust as tr  # noqa: E402
from toyrobust.sweeps import load_results, plan, sweep  # noqa: E402
from toyrobust.sweeps.runner import _init_worker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: columns that legitimately differ between two runs of the same task
VOLATILE = {"wall_time", "host", "pid", "finished", "attempts", "seconds", "samples_per_second"}


def logging_task(params):
    """Appends its x to a log file (to count runs), refuses x = 3, returns x squared."""
    with open(params["log"], "a") as fh:
        fh.write(f"{params['x']}\n")
    if params["x"] == 3:
        raise ArithmeticError("x = 3 is refused on purpose")
    return {"y": params["x"] ** 2}


def kill_own_worker_once(params):
    """Kills its own worker process the first time x = 2 runs (marker file); returns x + 1."""
    marker = Path(params["marker"])
    if params["x"] == 2 and not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": params["x"] + 1}


class CountingPool(ProcessPoolExecutor):
    """A spawn process pool (one worker, one torch thread) that counts its submissions."""

    def __init__(self) -> None:
        super().__init__(1, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(1,))
        self.submissions = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submissions += 1
        return super().submit(fn, *args, **kwargs)


class CountingThreads(ThreadPoolExecutor):
    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.submissions = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submissions += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def pool():
    ex = CountingPool()
    yield ex
    ex.shutdown(wait=True)


def stable(store: Path) -> list[dict]:
    """Rows without the columns that change between runs, sorted by task id, NaN as None."""
    df = load_results(store)
    recs = df[[c for c in df.columns if c not in VOLATILE]].sort_values("task_id").to_dict("records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in recs]


def row_files(store: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (store / "rows").glob("*.json") if not p.name.startswith(".")}


ESTIMATE_GRID = {"dist": "tsipras", "p": 0.9, "eta": 2.0, "classifier": ["bayes", "robust"],
                 "threat": ["linf:0.5", "linf:1.5"], "n": 3_000, "attack": "exact", "seed": [0, 1, 2]}


def test_chunked_rows_equal_one_task_per_submission(tmp_path, pool):
    """The same rows (values, seeds, one per task) with chunks of 5, adaptive chunks and one task per submission;
    the Monte Carlo counts are those of direct tr.estimate_risk calls."""
    tasks = plan(ESTIMATE_GRID, "estimate")[2]
    runs = {}
    for label, chunk in [("one", 1), ("five", 5), ("auto", None)]:
        before = pool.submissions
        res = sweep(ESTIMATE_GRID, "estimate", store=tmp_path / label, executor=pool, progress=False,
                    chunk_size=chunk)
        assert (res.total, res.ok, res.errors, res.lost) == (12, 12, 0, 0)
        runs[label] = pool.submissions - before
    assert runs["one"] == 12 and runs["five"] == math.ceil(12 / 5)  # 5 + 5 + 2 tasks
    rows = stable(tmp_path / "one")
    assert rows == stable(tmp_path / "five") == stable(tmp_path / "auto")
    assert len(rows) == 12 and sorted(r["task_id"] for r in rows) == sorted(t.id for t in tasks)
    for r in rows:
        dist = tr.Tsipras(p=0.9, eta=2.0)
        clf = dist.bayes_classifier() if r["classifier"] == "bayes" else tr.Linear([1.0, 0.0])
        direct = tr.estimate_risk(dist, clf, tr.Linf(float(r["threat"].split(":")[1])), n=3_000, seed=r["seed"],
                                  attack="exact")
        assert r["status"] == "ok" and r["k"] == direct.k and r["n"] == 3_000
    assert sorted(r["seed"] for r in rows) == sorted([0, 1, 2] * 4)


def test_adaptive_chunks_group_small_tasks(tmp_path):
    """60 tasks of microseconds on 2 threads: far fewer than 60 submissions, every task one row."""
    log = tmp_path / "log"
    with CountingThreads(2) as ex:
        res = sweep({"x": [x for x in range(1, 61) if x != 3], "log": str(log)}, logging_task, store=tmp_path / "s",
                    executor=ex, progress=False)
        assert res.ok == 59 and ex.submissions < 30
    assert sorted(load_results(tmp_path / "s").y) == sorted(x * x for x in range(1, 61) if x != 3)
    assert sorted(int(x) for x in log.read_text().split()) == [x for x in range(1, 61) if x != 3]  # each ran once


def test_an_error_in_a_chunk_is_recorded_for_that_task_only(tmp_path, pool):
    log = tmp_path / "log"
    res = sweep({"x": list(range(1, 9)), "log": str(log)}, logging_task, store=tmp_path / "s", executor=pool,
                progress=False, chunk_size=4)
    assert (res.ok, res.errors, res.lost) == (7, 1, 0)
    df = load_results(tmp_path / "s")
    assert len(df) == 8 and df.task_id.is_unique
    bad = df[df.status == "error"]
    assert list(bad.x) == [3] and "ArithmeticError: x = 3 is refused on purpose" in bad.error.iloc[0]
    ok = df[df.status == "ok"]
    assert sorted(zip(ok.x, ok.y)) == [(x, x * x) for x in range(1, 9) if x != 3]
    assert sorted(int(x) for x in log.read_text().split()) == list(range(1, 9))  # each task ran once
    assert set(df.pid) == {set(df.pid).pop()} and os.getpid() not in set(df.pid)  # in the pool's worker


@pytest.mark.slow
def test_worker_killed_during_a_chunk_loses_no_task(tmp_path):
    """The default pool: a task kills its worker in the middle of a chunk of 3; the chunk's tasks are resubmitted
    one by one, every task ends with one ok row."""
    marker = tmp_path / "marker"
    res = sweep({"x": list(range(1, 7)), "marker": str(marker)}, kill_own_worker_once, store=tmp_path / "s",
                max_workers=1, progress=False, chunk_size=3)
    assert marker.read_text() == "killed once"
    assert (res.ok, res.errors, res.lost) == (6, 0, 0)
    df = load_results(tmp_path / "s")
    assert sorted(df.y) == [2, 3, 4, 5, 6, 7] and df.task_id.is_unique


SLOW_LOG = '''import time


def task(params):
    time.sleep(params["t"])
    with open(params["log"], "a") as fh:
        fh.write(f"{params['x']}\\n")
    return {"y": params["x"] * 2}
'''


def test_driver_killed_during_chunks_then_resumed(tmp_path):
    """kill -9 of the driver while its two workers are inside chunks of 6 (tasks have run whose rows were not yet
    returned), then --resume: exactly one row per task, the rows written before the kill untouched, the same values
    as an uninterrupted run, no temporary file left."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "slowlog.py").write_text(SLOW_LOG)
    log = tmp_path / "log"
    config = tmp_path / "c.toml"
    config.write_text(f'task = "slowlog:task"\n[grid]\nx = {list(range(36))}\nt = 0.05\nlog = "{log}"\n')
    store = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path / "mods"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "toyrobust", "sweep", str(config), "--store", str(store), "--workers", "2",
           "--chunk-size", "6", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        ran = 0
        while time.monotonic() < deadline and proc.poll() is None:
            ran = len(log.read_text().split()) if log.exists() else 0
            if len(row_files(store)) >= 6 and ran >= len(row_files(store)) + 2:
                break  # some chunk is half done: its first tasks ran, their rows are not stored
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the workers too (their watchdog would end them anyway)
        proc.stdout.close()
        proc.stderr.close()
    before = row_files(store)
    assert 6 <= len(before) < 36 and ran > len(before)
    done = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = row_files(store)
    assert len(after) == 36 and all(after[k] == v for k, v in before.items())
    assert not list((store / "rows").glob(".tmp-*"))
    assert sorted((json.loads(v)["x"], json.loads(v)["y"]) for v in after.values()) == [(x, 2 * x) for x in range(36)]
    assert len(log.read_text().split()) >= 36  # the tasks cut by the kill ran again



def kill_own_worker_at(params):
    """Kills its own worker process whenever x equals params["bad"]; returns x + 1 otherwise."""
    if params["x"] == params["bad"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": params["x"] + 1}


def test_dask_killed_worker_splits_the_chunk_and_loses_only_the_killer(tmp_path):
    """Dask gives up on a chunk of 4 whose third task kills every worker it runs on (KilledWorker after
    ``allowed-failures``); the sweep then runs that chunk's tasks one by one: the three innocent tasks end ok, the
    killer alone gets a "lost" row naming KilledWorker, and every other chunk is untouched."""
    distributed = pytest.importorskip("distributed")
    import cloudpickle
    import dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                               dashboard_address=None)
            client = distributed.Client(cluster)
            try:
                res = sweep({"x": list(range(1, 9)), "bad": 3}, kill_own_worker_at, store=tmp_path / "s",
                            executor=client, progress=False, chunk_size=4)
            finally:
                client.close()
                cluster.close()
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    df = load_results(tmp_path / "s")
    assert df.task_id.is_unique and len(df) == 8
    ok = df[df.status == "ok"]
    assert sorted(zip(ok.x, ok.y)) == [(x, x + 1) for x in range(1, 9) if x != 3]
    bad = df[df.status != "ok"]
    assert list(bad.x) == [3] and "KilledWorker" in bad.error.iloc[0]
    assert (res.ok, res.errors + res.lost) == (7, 1)
