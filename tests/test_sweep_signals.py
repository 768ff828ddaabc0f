"""A sweep driver stopped by a signal (issue 22 items 2 and 3): Ctrl-C and SIGTERM stop it in one line that says how
many rows are stored and that ``--resume`` continues (exit status 130 / 143, no traceback), and no worker process
outlives the driver, even after ``kill -9``.

Each test runs ``python -m toyrobust sweep`` in its own session (so its process group holds the driver, its workers
and multiprocessing's resource tracker, and nothing else) on a task that sleeps, and signals it once a row is stored.
Each interpreter start imports torch: seconds per process on a loaded machine, hence the generous deadlines.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")

REPO = Path(__file__).resolve().parents[1]
#: how long the workers may outlive their driver (the watchdog checks every 0.5 s)
GRACE = 10.0

SLEEPY = '''import time


def task(params):
    time.sleep(params["t"])
    return {"y": params["x"] * 2}
'''


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``: psutil when installed, else /proc."""
    try:
        import psutil
    except ImportError:
        psutil = None
    found = []
    if psutil is not None:
        for proc in psutil.process_iter(["pid", "status"]):
            with contextlib.suppress(psutil.Error, OSError):
                if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                    found.append(proc.pid)
        return found
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
                if state != "Z" and int(pgrp) == pgid:
                    found.append(int(entry.name))
    return found


def wait_gone(pgid: int, timeout: float) -> list[int]:
    """Wait until no process of the group is left (or the timeout); returns those left."""
    deadline = time.monotonic() + timeout
    left = group_members(pgid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = group_members(pgid)
    return left


def rows(store: Path) -> int:
    return len([p for p in (store / "rows").glob("*.json") if not p.name.startswith(".")]) if store.is_dir() else 0


def _sigint_default() -> None:
    """In the child before exec: SIGINT back to its default action. A shell without job control starts background
    commands (``cmd &``) with SIGINT ignored, an action inherited across exec; the sweep then rightly ignores Ctrl-C
    (as a user's ``toyrobust sweep ... &`` should) and these tests would wait for the end of the sweep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def running_sweep(tmp_path: Path, workers: int, tasks: int = 24, seconds: float = 1.0):
    """A ``toyrobust sweep`` subprocess of ``tasks`` sleeping tasks on ``workers`` workers, yielded (with its store)
    once at least one row is stored and its workers are up; anything of its group still alive is killed at the end."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "sleepy.py").write_text(SLEEPY)
    config = tmp_path / "sleep.toml"
    config.write_text(f'task = "sleepy:task"\n[grid]\nx = {list(range(tasks))}\nt = {seconds}\n')
    store = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path / "mods"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "toyrobust", "sweep", str(config), "--store", str(store), "--workers", str(workers),
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and rows(store) < 1:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        assert rows(store) < tasks, "the sweep finished before it could be signalled"
        yield proc, store
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()  # not read after a kill -9: closed here, not left to the garbage collector
        proc.stderr.close()


@pytest.mark.parametrize(("signame", "to_group", "workers"), [
    ("SIGINT", False, 2),  # kill -INT DRIVER
    ("SIGINT", True, 2),  # Ctrl-C at a terminal: the whole foreground group, workers included
    ("SIGTERM", False, 1),
], ids=["sigint-driver", "sigint-group", "sigterm"])
def test_signal_stops_the_sweep_in_one_line(tmp_path, signame, to_group, workers):
    """Issue 22 item 2: a 24-line KeyboardInterrupt traceback and exit status -2 before; now one line naming the
    signal, the rows stored and --resume, exit status 128 + signal, and no worker left behind."""
    signum = getattr(signal, signame)
    with running_sweep(tmp_path, workers) as (proc, store):
        assert len(group_members(proc.pid)) >= 1 + workers  # the driver and its workers
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signum, err
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        stored = rows(store)
        match = re.fullmatch(rf"toyrobust: sweep interrupted \({signame}\): (\d+) of 24 rows are stored in "
                             rf"{re.escape(str(store))}; run the same command with --resume to continue", lines[0])
        assert match and int(match.group(1)) == stored and 1 <= stored < 24, lines[0]
        assert not wait_gone(proc.pid, GRACE)  # the driver stopped its workers
        assert not list((store / "rows").glob(".tmp-*"))  # no row cut in half


def test_sigkill_of_the_driver_leaves_no_worker_running(tmp_path):
    """Issue 22 item 3: after ``kill -9`` of the driver its two spawn workers and the resource tracker were
    re-parented to PID 1 and still alive minutes later; now each worker's watchdog sees its parent gone and exits."""
    with running_sweep(tmp_path, workers=2) as (proc, _store):
        members = group_members(proc.pid)
        assert len(members) >= 3, members  # the driver, two workers (and the resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        start = time.monotonic()
        left = wait_gone(proc.pid, GRACE)
        assert not left, f"still running {GRACE} s after the driver's kill -9: {left}"
        assert time.monotonic() - start < GRACE
