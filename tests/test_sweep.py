"""Parameter sweeps: grid expansion, the crash-safe store, resume, executors (process pool and Dask), shards.

References are independent of the code under test: closed forms evaluated with scipy's normal tail, exact
binomial intervals from scipy.stats.binomtest, direct calls of tr.estimate_risk in a plain loop, brute-force
itertools products, and uninterrupted runs for the crash tests.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import scipy.stats  # noqa: E402

import toyrobust as tr  # noqa: E402
from toyrobust.sweeps import (  # noqa: E402
    Store,
    default_executor,
    expand_grid,
    load_results,
    merge_estimates,
    merge_shards,
    shard_offset,
    shard_sizes,
    sweep,
    to_parquet,
)
from toyrobust.sweeps import command as sweep_command  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: columns that legitimately differ between two runs of the same task
VOLATILE = {"wall_time", "host", "pid", "finished", "seconds", "attempts", "train_time", "samples_per_second"}


# ---------------------------------------------------------------------------------------------------- helpers
def counting_task(params, *, context=None):
    """A task that appends its parameters to a log file (to count runs) and returns a function of them."""
    with open(params["log"], "a") as fh:
        fh.write(json.dumps(params) + "\n")
    if params.get("x") == 3:
        raise ArithmeticError("x = 3 is refused on purpose")
    return {"y": params["x"] ** 2}


def kill_own_worker_once(params):
    """Kills its own worker process the first time it runs (marker file), then returns x + 1."""
    marker = Path(params["marker"])
    if not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": params["x"] + 1}


def stable(df: pd.DataFrame) -> list[dict]:
    """Rows without the columns that change between runs, sorted by task id, NaN as None."""
    cols = [c for c in df.columns if c not in VOLATILE]
    recs = df[cols].sort_values("task_id").to_dict("records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in recs]


def row_files(store: Path) -> dict[str, str]:
    """The complete row files of a store (a temporary file cut by a kill starts with a dot), by name."""
    return {p.name: p.read_text() for p in (store / "rows").glob("*.json") if not p.name.startswith(".")}


def run_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def pool():
    """The default executor (a spawn process pool; one worker, one torch thread: each process start costs an import
    of torch and sympy, seconds on a loaded machine), shared by the tests that need real processes."""
    ex = default_executor(1, threads_per_worker=1)
    yield ex
    ex.shutdown(wait=True)


@pytest.fixture(scope="module")
def client():
    """A Dask LocalCluster on loopback: two worker processes, one thread each, no dashboard."""
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this test module
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# ---------------------------------------------------------------------------------------------------- grids
def test_grid_expands_to_the_cartesian_product_with_zip_groups():
    grid = {"a": [1, 2, 3], "b": "fixed", "c": [0.5, 1.5], "zip": [{"u": [1, 2], "v": ["x", "y"]}]}
    tasks = expand_grid(grid, "t")
    expected = [{"b": "fixed", "a": a, "c": c, "u": u, "v": v}
                for a, c, (u, v) in itertools.product([1, 2, 3], [0.5, 1.5], [(1, "x"), (2, "y")])]
    assert [t.params for t in tasks] == expected
    assert len({t.id for t in tasks}) == len(tasks)
    assert [t.id for t in expand_grid(dict(reversed(list(grid.items()))), "t")] != []  # order-free ids:
    assert {t.id for t in expand_grid(dict(reversed(list(grid.items()))), "t")} == {t.id for t in tasks}
    assert {t.id for t in expand_grid(grid, "other")}.isdisjoint({t.id for t in tasks})
    with pytest.raises(ValueError, match="zip group 0"):
        expand_grid({"zip": [{"u": [1, 2], "v": [1]}]}, "t")
    with pytest.raises(ValueError, match="empty"):
        expand_grid({"a": []}, "t")
    with pytest.raises(ValueError, match="finite"):
        expand_grid({"a": [float("nan")]}, "t")


@given(st.dictionaries(st.sampled_from("abcdef"), st.lists(st.integers(-5, 5), min_size=1, max_size=4, unique=True),
                       max_size=4))
def test_grid_size_and_ids_property(axes):
    tasks = expand_grid(axes, "t")
    assert len(tasks) == math.prod(len(v) for v in axes.values())
    assert len({t.id for t in tasks}) == len(tasks)
    assert [t.id for t in expand_grid(axes, "t")] == [t.id for t in tasks]  # deterministic


def test_shard_sizes_add_up():
    for n, s in [(10, 3), (7, 7), (100_000, 4), (5, 1)]:
        sizes = shard_sizes(n, s)
        assert sum(sizes) == n and max(sizes) - min(sizes) <= 1 and len(sizes) == s


# ---------------------------------------------------------------------------------------------------- risk task
def test_vectorised_risk_axis_is_one_task_and_matches_scipy(tmp_path):
    """Linear classifier w on N(y mu, I): Linf risk = Q((w.mu - eps ||w||_1) / ||w||_2) (Hoelder; scipy)."""
    eps = np.linspace(0.0, 2.0, 100_001)
    grid = {"dist": "gaussian-mixture", "mean": "1.0,2.0", "sigma": 1.0, "classifier": ["linear:1,2", "linear:2,1"],
            "threat": "linf:eps", "eps": eps}
    with ThreadPoolExecutor(2) as ex:
        res = sweep(grid, "risk", store=tmp_path / "s", executor=ex, progress=False)
    assert (res.total, res.ok, res.errors) == (2, 2, 0)  # 2 rows, not 200,002
    df = load_results(tmp_path / "s", explode=True)
    assert len(df) == 2 * eps.size
    for w in ([1.0, 2.0], [2.0, 1.0]):
        part = df[df.classifier == f"linear:{w[0]:g},{w[1]:g}"]
        wmu, l1, l2 = w[0] + 2 * w[1], sum(w), math.hypot(*w)
        ref = scipy.stats.norm.sf((wmu - part.eps.to_numpy() * l1) / l2)
        np.testing.assert_allclose(part.value.to_numpy(dtype=float), ref, rtol=1e-9, atol=1e-300)


def test_risk_rows_record_versions_and_exact_values(tmp_path):
    """sign(x_1) on Tsipras(p): standard risk 1 - p, unchanged by Linf eps < 1, 1 for eps >= 1 (x_1 = +-1)."""
    grid = {"dist": "tsipras", "p": [0.7, 0.9], "eta": 3, "classifier": "robust",
            "threat": ["linf:0.5", "linf:1.5", "none"]}
    with ThreadPoolExecutor(2) as ex:
        sweep(grid, "risk", store=tmp_path / "s", executor=ex, progress=False)
    df = load_results(tmp_path / "s")
    assert len(df) == 6 and (df.status == "ok").all()
    for r in df.itertuples():
        assert r.value == pytest.approx(1.0 if r.threat == "linf:1.5" else 1 - r.p, abs=1e-12)
    import torch

    assert set(df.toyrobust_version) == {tr.__version__} and set(df.torch_version) == {torch.__version__}
    assert set(df.device) == {"cpu"} or all(d.startswith("cuda") for d in df.device)
    assert df.wall_time.notna().all() and "seed" in df.columns


def test_a_raising_task_is_recorded_and_the_sweep_goes_on(tmp_path):
    log = tmp_path / "log"
    with ThreadPoolExecutor(2) as ex:
        res = sweep({"x": [1, 2, 3, 4], "log": str(log)}, counting_task, store=tmp_path / "s", executor=ex,
                    progress=False)
    assert (res.ok, res.errors) == (3, 1)
    df = load_results(tmp_path / "s")
    bad = df[df.status == "error"]
    assert list(bad.x) == [3] and "ArithmeticError: x = 3 is refused on purpose" in bad.error.iloc[0]
    assert sorted(df[df.status == "ok"].y) == [1, 4, 16]
    # the built-in risk task: a symbol without an array axis fails in that task only
    with ThreadPoolExecutor(2) as ex:
        res = sweep({"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": "robust", "threat": ["linf:0.5", "linf:e"]},
                    "risk", store=tmp_path / "r", executor=ex, progress=False)
    df = load_results(tmp_path / "r")
    assert (res.ok, res.errors) == (1, 1)
    assert "symbolic" in df[df.status == "error"].error.iloc[0]


# ---------------------------------------------------------------------------------------------------- store
def test_resume_runs_only_missing_tasks_and_keeps_one_row_each(tmp_path):
    log, store = tmp_path / "log", tmp_path / "s"
    grid = {"x": [1, 2, 4, 5, 6, 7], "log": str(log)}
    with ThreadPoolExecutor(2) as ex:
        sweep(grid, counting_task, store=store, executor=ex, progress=False)
        rows = sorted((store / "rows").glob("*.json"))
        assert len(rows) == 6 and len(run_log(log)) == 6
        for p in rows[:2]:
            p.unlink()
        (store / "rows" / ".tmp-half-written.json").write_text('{"task_id": "tr')  # a killed writer's leftover
        rows[2].write_text('{"task_id": "')  # what a machine crash before the fsync could leave
        with pytest.warns(UserWarning, match="unreadable row"):
            res = sweep(grid, counting_task, store=store, executor=ex, progress=False)
        assert (res.skipped, res.ok) == (3, 3) and len(run_log(log)) == 9
        res = sweep(grid, counting_task, store=store, executor=ex, progress=False)
        assert (res.skipped, res.ok) == (6, 0) and len(run_log(log)) == 9
        with pytest.raises(ValueError, match="resume"):
            sweep(grid, counting_task, store=store, executor=ex, progress=False, resume=False)
    df = load_results(store)
    assert sorted(df.x) == [1, 2, 4, 5, 6, 7] and df.task_id.is_unique
    assert not list((store / "rows").glob(".tmp-*"))


def test_store_refuses_another_grid_or_version_before_running(tmp_path):
    log, store = tmp_path / "log", tmp_path / "s"
    with ThreadPoolExecutor(1) as ex:
        sweep({"x": [1, 2], "log": str(log)}, counting_task, store=store, executor=ex, progress=False)
        with pytest.raises(ValueError, match=r"store .*s'.*grid differs: x = \[1,2\] there, \[1,2,4\] here"):
            sweep({"x": [1, 2, 4], "log": str(log)}, counting_task, store=store, executor=ex, progress=False)
        manifest = json.loads((store / "sweep.json").read_text())
        manifest["toyrobust_version"] = "0.0.1"
        (store / "sweep.json").write_text(json.dumps(manifest))
        with pytest.raises(ValueError, match=r"written by toyrobust 0\.0\.1, this is toyrobust " + tr.__version__):
            sweep({"x": [1, 2], "log": str(log)}, counting_task, store=store, executor=ex, progress=False)
        other = tmp_path / "not-a-store"
        other.mkdir()
        (other / "data.txt").write_text("mine")
        with pytest.raises(ValueError, match="not a sweep's store"):
            sweep({"x": [1], "log": str(log)}, counting_task, store=other, executor=ex, progress=False)
    assert len(run_log(log)) == 2  # only the first sweep ran tasks


def test_one_driver_per_store(tmp_path):
    st = Store(tmp_path / "s")
    st.lock()
    try:
        with pytest.raises(ValueError, match="in use by another running sweep"):
            sweep({"x": [1], "log": str(tmp_path / "log")}, counting_task, store=tmp_path / "s",
                  executor=ThreadPoolExecutor(1), progress=False)
    finally:
        st.unlock()


# ---------------------------------------------------------------------------------------------------- command line
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_CONFIGS = {
    "unknown distribution": ('task = "risk"\n[grid]\ndist = "tsipraz"\n', "unknown distribution 'tsipraz'"),
    "invalid parameter": ('task = "risk"\n[grid]\ndist = "tsipras"\np = [0.9, 1.5]\neta = 3\n', "p"),
    "unknown parameter": ('task = "risk"\n[grid]\ndist = "tsipras"\np = 0.9\neta = 3\nzeta = 1\n',
                          "no parameter 'zeta'"),
    "threat spec": ('task = "estimate"\n[grid]\ndist = "tsipras"\np = 0.9\neta = 3\nthreat = ["linf:0.3", "linf0.3"]\n',
                    "--threat 'linf0.3' not understood"),
    "classifier spec": ('task = "risk"\n[grid]\ndist = "tsipras"\np = 0.9\neta = 3\nclassifier = "lin:1"\n',
                        "--classifier 'lin:1' not understood"),
    "unknown task": ('task = "risks"\n[grid]\ndist = "tsipras"\n', "unknown task 'risks'"),
    "not TOML": ('task = "risk"\n[grid\n', "not valid TOML"),
    "shards > n": ('task = "estimate"\n[grid]\ndist = "tsipras"\np = 0.9\neta = 3\nn = 2\nshards = 3\n',
                   "shards must be <= n"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_configurations_fail_in_one_line_before_any_task(tmp_path, capsys, case):
    text, message = BAD_CONFIGS[case]
    config = _write(tmp_path / "c.toml", text)
    status = sweep_command.main([str(config), "--store", str(tmp_path / "s"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1 and err.startswith("toyrobust: error:")
    assert not (tmp_path / "s").exists()  # nothing created, nothing run


def test_command_refuses_a_store_of_another_grid_and_needs_resume(tmp_path, capsys):
    grid = {"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": "robust", "threat": ["linf:0.5"]}
    with ThreadPoolExecutor(1) as ex:
        sweep(grid, "risk", store=tmp_path / "s", executor=ex, progress=False)
    before = sorted(p.read_text() for p in (tmp_path / "s" / "rows").iterdir())
    base = 'task = "risk"\n[grid]\ndist = "tsipras"\np = 0.9\neta = 3\nclassifier = "robust"\n'
    config = _write(tmp_path / "c.toml", base + 'threat = ["linf:0.5", "linf:1.5"]\n')
    assert sweep_command.main([str(config), "--store", str(tmp_path / "s"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "holds a different sweep" in err and "threat" in err and err.count("\n") == 1
    same = _write(tmp_path / "same.toml", base + 'threat = ["linf:0.5"]\n')
    assert sweep_command.main([str(same), "--store", str(tmp_path / "s")]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert sweep_command.main([str(same), "--store", str(tmp_path / "s"), "--resume", "--dry-run"]) == 0
    assert "1 tasks (risk); 1 already in" in capsys.readouterr().out
    assert sorted(p.read_text() for p in (tmp_path / "s" / "rows").iterdir()) == before


def test_summary_merges_shards(tmp_path):
    grid = {"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": ["robust", "bayes"], "n": 3000, "shards": 3,
            "seed": 1}
    with ThreadPoolExecutor(2) as ex:
        res = sweep(grid, "estimate", store=tmp_path / "s", executor=ex, progress=False)
    text = sweep_command.format_summary(res)
    lines = text.splitlines()
    assert "6 tasks" in lines[0] and lines[1].split()[:2] == ["classifier", "status"]
    assert len(lines) == 4 and all(" ok " in line and "3000" in line for line in lines[2:])


UNWRITABLE = {
    "virtual file system": ("/proc/nope/s", "cannot create a folder in '/proc'"),
    "below a file": ("{tmp}/c.toml/s", "is a file, not a folder"),
    "a file": ("{tmp}/c.toml", "is a file, not a folder"),
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", sorted(UNWRITABLE))
def test_unwritable_store_is_refused_in_one_line_before_any_task(tmp_path, capsys, case, dry_run):
    """Issue 22 item 1: ``--store /proc/nope/s`` was a 38-line FileNotFoundError traceback (exit 1), and --dry-run
    pretended all was well; now one line, exit 2, and nothing runs or is created."""
    store, message = UNWRITABLE[case]
    store = store.format(tmp=tmp_path)
    if store.startswith("/proc/") and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    log = tmp_path / "log"
    config = _write(tmp_path / "c.toml", f'task = "{__name__}:counting_task"\n[grid]\nx = [1, 2]\nlog = "{log}"\n')
    argv = [str(config), "--store", store, "--workers", "0", "--no-progress"] + (["--dry-run"] if dry_run else [])
    status = sweep_command.main(argv)
    captured = capsys.readouterr()
    assert status == 2 and captured.out == "", captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("toyrobust: error:")
    assert "cannot be" in captured.err or "is a file" in captured.err
    assert message in captured.err and store in captured.err
    assert not log.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # nothing ran or was made
    with pytest.raises(ValueError, match="cannot be|is a file"):
        sweep({"x": [1], "log": str(log)}, counting_task, store=store, executor=ThreadPoolExecutor(1), progress=False)
    assert not log.exists()


def test_writable_store_probe_leaves_nothing_behind(tmp_path):
    Store(tmp_path / "a" / "b").check_writable()  # to be created: probed in tmp_path, not created
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "s" / "rows").mkdir(parents=True)
    Store(tmp_path / "s").check_writable()  # existing: probed in it and in rows/
    assert [p.name for p in (tmp_path / "s").rglob("*")] == ["rows"]


# ---------------------------------------------------------------------------------------------------- shards
def test_sharded_estimate_merges_to_the_counts_of_direct_runs(tmp_path):
    """Shards are disjoint ranges of the seed's stream: their k add up to the k of ONE direct tr.estimate_risk run
    over all n points (an exact, deterministic attack); each shard is a direct run at its offset; the merged
    interval is scipy's exact binomial interval of (k, n)."""
    n, shards, seed = 9_001, 4, 7
    grid = {"dist": "tsipras", "p": 0.9, "eta": 1.0, "classifier": "bayes", "threat": "linf:0.5", "n": n,
            "shards": shards, "seed": seed, "attack": "exact"}
    with ThreadPoolExecutor(2) as ex:
        sweep(grid, "estimate", store=tmp_path / "s", executor=ex, progress=False)
        sweep({**grid, "shards": 1}, "estimate", store=tmp_path / "one", executor=ex, progress=False)
    df = load_results(tmp_path / "s")
    merged = merge_estimates(df)
    dist = tr.Tsipras(p=0.9, eta=1.0)
    single = tr.estimate_risk(dist, dist.bayes_classifier(), tr.Linf(0.5), n=n, seed=seed, attack="exact")
    assert merged.k == single.k and merged.n == n
    sizes = shard_sizes(n, shards)
    assert [shard_offset(n, shards, i) for i in range(shards)] == [0, sizes[0], sum(sizes[:2]), sum(sizes[:3])]
    direct = [tr.estimate_risk(dist, dist.bayes_classifier(), tr.Linf(0.5), n=m, seed=seed,
                               offset=shard_offset(n, shards, i), attack="exact") for i, m in enumerate(sizes)]
    assert sorted(df.k) == sorted(e.k for e in direct)
    ci = scipy.stats.binomtest(merged.k, n).proportion_ci(0.95, method="exact")
    assert (merged.ci_low, merged.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    # the shards' offsets and the grid's seed are recorded
    assert sorted(df.offset) == sorted(shard_offset(n, shards, i) for i in range(shards)) and set(df.seed) == {seed}
    # one shard is tr.estimate_risk(seed=seed) itself
    one = merge_estimates(load_results(tmp_path / "one"))
    assert one.k == single.k
    to_parquet(tmp_path / "s", tmp_path / "s.parquet")
    assert stable(pd.read_parquet(tmp_path / "s.parquet")) == stable(df)  # the Parquet export round-trips
    table = merge_shards(df)
    assert len(table) == 1 and table.k.iloc[0] == merged.k and table.status.iloc[0] == "ok"
    with pytest.raises(ValueError, match="shards 0..3 once each"):
        merge_estimates(df.iloc[:3])


# ---------------------------------------------------------------------------------------------------- executors
ESTIMATE_GRID = {"dist": "tsipras", "p": 0.9, "eta": 2.0, "classifier": ["bayes", "robust"],
                 "threat": ["linf:0.5", "linf:1.5"], "n": 6_000, "shards": 2, "seed": 3}


def test_process_pool_and_dask_give_identical_rows(tmp_path, pool, client):
    a = sweep(ESTIMATE_GRID, "estimate", store=tmp_path / "pool", executor=pool, progress=False)
    b = sweep(ESTIMATE_GRID, "estimate", store=tmp_path / "dask", executor=client, progress=False)
    assert a.ok == b.ok == 8 and a.errors == b.errors == 0
    rows_a, rows_b = stable(load_results(tmp_path / "pool")), stable(load_results(tmp_path / "dask"))
    assert rows_a == rows_b
    pids = set(load_results(tmp_path / "dask").pid)
    assert os.getpid() not in pids  # ran in the cluster's worker processes


def test_worker_killed_mid_task_on_local_cluster_is_retried(tmp_path, client):
    marker = tmp_path / "marker"
    res = sweep({"x": [10, 20, 30], "marker": str(marker)}, kill_own_worker_once, store=tmp_path / "s",
                executor=client, progress=False)
    assert marker.read_text() == "killed once"
    assert (res.ok, res.errors, res.lost) == (3, 0, 0)
    df = load_results(tmp_path / "s")
    assert sorted(df.y) == [11, 21, 31] and df.task_id.is_unique


@pytest.mark.slow
def test_worker_killed_in_the_default_pool_is_resubmitted(tmp_path):
    marker = tmp_path / "marker"
    res = sweep({"x": [1, 2, 3], "marker": str(marker)}, kill_own_worker_once, store=tmp_path / "s",
                max_workers=1, progress=False)
    assert (res.ok, res.errors) == (3, 0) and marker.exists()
    assert sorted(load_results(tmp_path / "s").y) == [2, 3, 4]


CRASH_CONFIG = """task = "estimate"
[grid]
dist = "gaussian-mixture"
mean = "1.0,0.5,0.25"
classifier = ["bayes", "linear:1,0,0"]
threat = ["l2:0.25", "l2:0.5"]
attack = "exact"
n = 60000
shards = 3
seed = 11
"""


def test_driver_killed_with_sigkill_then_resumed(tmp_path):
    config = _write(tmp_path / "crash.toml", CRASH_CONFIG)
    store = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # the tasks run in the driver process (--workers 0): the kill hits it mid-task or mid-write, and each
    # interpreter start (torch, sympy) costs seconds on a loaded machine
    cmd = [sys.executable, "-m", "toyrobust.sweeps", str(config), "--store", str(store), "--workers", "0",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (store / "rows").is_dir() and len(row_files(store)) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)  # the driver, mid-run
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything it started, if still alive
        proc.stdout.close()  # its pipes, unread after the kill (else a ResourceWarning)
        proc.stderr.close()
    before = row_files(store)
    assert 3 <= len(before) < 12
    done = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = row_files(store)
    assert not list((store / "rows").glob(".tmp-*"))  # a write cut by the kill was cleaned up
    assert len(after) == 12 and all(after[k] == v for k, v in before.items())  # old rows untouched, none twice
    assert f"{12 - len(before)} ok" in done.stdout
    # the same values as an uninterrupted run
    with ThreadPoolExecutor(2) as ex:
        ref = sweep(tomllib_grid(config), "estimate", store=tmp_path / "ref", executor=ex, progress=False)
    assert ref.ok == 12
    assert stable(load_results(store)) == stable(load_results(tmp_path / "ref"))


def tomllib_grid(path: Path) -> dict:
    return sweep_command.load_config(path)["grid"]


# ---------------------------------------------------------------------------------------------------- train
def test_train_task_keeps_its_checkpoint_in_the_store(tmp_path):
    grid = {"dist": "gaussian-mixture", "mean": [[1.0, 0.2]], "model": "linear", "steps": 30, "batch_size": 64,
            "lr": 0.05, "seed": [0, 1], "eval_n": 500}
    with ThreadPoolExecutor(2) as ex:
        res = sweep(grid, "train", store=tmp_path / "s", executor=ex, progress=False)
    assert (res.ok, res.errors) == (2, 0)
    df = load_results(tmp_path / "s")
    for r in df.itertuples():
        assert Path(r.checkpoint).is_file() and Path(r.checkpoint).parent == tmp_path / "s" / "checkpoints"
        model = tr.LinearModel(2)
        tr.train(model, tr.GaussianMixture([1.0, 0.2]), steps=30, batch_size=64, lr=0.05, seed=int(r.seed),
                 eval_n=500)
        w = model.linear.weight.detach()[0].tolist()
        assert r.w == pytest.approx(w, rel=1e-6) and r.steps_done == 30
