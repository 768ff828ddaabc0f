"""Running a sweep: the grid's tasks on a concurrent.futures executor or a Dask cluster, rows into a store.

The driver expands the grid, checks every task's configuration and the store, then submits the missing tasks
in chunks and writes the rows as the chunks complete (workers return rows; only the driver writes, so workers
need no access to the store's file system unless a task keeps files there, like training checkpoints).

Chunks: one submission runs several tasks one after the other in a worker and returns their rows together, so
small tasks do not each pay a round trip to the executor (a Dask scheduler's is milliseconds). The first
submissions hold one task each; from then on a chunk holds about :data:`CHUNK_SECONDS` of task time (the median
wall time of the tasks finished so far), at most :data:`MAX_CHUNK` tasks and at most the waiting tasks divided by
twice the executor's workers, so chunks shrink towards the end and every worker has work until the last one (and a
long task, or a sleeping one, still goes alone). A task that raises gives its own error row; the other rows of its
chunk are unaffected. Rows are written by one writer thread in groups (every row finished while the previous group
was being written), one durable group at a time (see :meth:`toyrobust.sweeps.store.Store.write_rows`); a row is
counted, reported and shown as done only once its group is on the disk.

Failure handling:

* a task that raises is caught in the worker and recorded with ``status = "error"`` and its error string;
  the sweep goes on;
* a worker process that dies mid-task: Dask reschedules the chunk itself (up to its ``allowed-failures``; a
  chunk that Dask gives up on (``KilledWorker``) is split and its tasks rerun one at a time with nothing else in
  flight, so only the task that kills its workers is recorded lost, not one that died beside it); the default process
  pool is rebuilt and the tasks it lost are resubmitted one per chunk, each at most ``max_attempts`` times before
  being recorded as an error;
* the driver killed (``kill -9``): the rows written so far are complete and durable (see
  :mod:`toyrobust.sweeps.store`); running the same sweep again on the same store runs only the missing tasks.
  The default pool's workers notice that their driver died (a watchdog thread in each compares ``os.getppid()``
  with the driver's pid every :data:`WATCHDOG_INTERVAL` seconds) and exit: no orphan keeps computing;
* Ctrl-C: the default pool's workers ignore SIGINT (they start with it blocked, then set it to ignored), so a
  Ctrl-C sent to the whole terminal's process group reaches only the driver, which stops its workers
  (``terminate``), lets the rows being written reach the disk, and re-raises KeyboardInterrupt
  (``toyrobust sweep`` turns it into one line and exit status 130, SIGTERM into 143).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import queue
import signal
import socket
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch

from .. import __version__
from ..rng import resolve_device
from .grid import TaskSpec, expand_grid, normalise_grid, stable_hash
from .store import FORMAT, Store, load_results
from .tasks import TASKS, SweepTask, TaskContext, resolve_task

__all__ = ["SweepResult", "sweep", "plan", "default_executor", "execute_task", "execute_chunk", "InProcessExecutor",
           "WorkerPool"]

#: threads writing groups of rows (a group being synced does not hold up the rows that finish meanwhile)
WRITER_THREADS = 2
#: threads flushing (fdatasync) the files of one group of rows concurrently: the file system commits them together
SYNC_THREADS = 8
#: seconds of task time a chunk of tasks aims at (one submission; see the module docstring)
CHUNK_SECONDS = 0.075
#: most tasks in one chunk
MAX_CHUNK = 256
#: finished tasks whose median wall time sizes the next chunk
TIMING_WINDOW = 64
#: row columns written by the runner (a grid parameter or a task result may not use these names)
RECORD_COLUMNS = ("task_id", "task", "status", "error", "toyrobust_version", "torch_version", "device",
                  "wall_time", "host", "pid", "finished", "attempts")
#: seconds between two checks of a default-pool worker's watchdog that its driver is still alive
WATCHDOG_INTERVAL = 0.5
#: exit status of a worker whose driver died
ORPHAN_EXIT_STATUS = 70


def _versions() -> tuple[str, str]:
    return __version__, torch.__version__


@dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
        store: the store's folder.
        total: tasks in the grid (shards counted).
        skipped: tasks already in the store (not rerun).
        ok: tasks that finished in this call.
        errors: tasks recorded with status "error" in this call.
        lost: tasks that could not run (their worker kept dying); not recorded, rerun on resume.
        seconds: wall time of this call.
        task: the task's name.
    """

    store: str
    total: int
    skipped: int = 0
    ok: int = 0
    errors: int = 0
    lost: int = 0
    seconds: float = 0.0
    task: str = ""
    error_messages: list[str] = field(default_factory=list)

    def frame(self, *, explode: bool = False) -> Any:
        """The store's rows as a pandas DataFrame (see :func:`toyrobust.sweeps.load_results`)."""
        return load_results(self.store, explode=explode)

    @property
    def complete(self) -> bool:
        """Whether every task of the grid has a row (ok or error)."""
        return self.skipped + self.ok + self.errors == self.total


# ---------------------------------------------------------------------------------------------------- worker side
def _init_worker(threads: int, driver_pid: int | None = None) -> None:
    """A default-pool worker's start: its torch threads, Ctrl-C ignored (the driver stops its workers), and a
    watchdog that ends the worker when the driver process ``driver_pid`` dies (``kill -9`` included)."""
    torch.set_num_threads(threads)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # also drops a Ctrl-C that arrived while it was blocked
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by WorkerPool.submit, see there
    if driver_pid is not None:
        threading.Thread(target=_watch_driver, args=(driver_pid,), name="toyrobust-sweep-watchdog",
                         daemon=True).start()


def _watch_driver(driver_pid: int, interval: float | None = None) -> None:
    """Exit this worker process (``os._exit``, status :data:`ORPHAN_EXIT_STATUS`) as soon as its parent is no longer
    ``driver_pid``: a dead parent's children are re-parented (to init or a subreaper), which changes getppid.
    A worker started just before the driver died finds it gone at the first check."""
    while True:
        if os.getppid() != driver_pid:
            os._exit(ORPHAN_EXIT_STATUS)  # the driver is gone: nobody will read this worker's results
        time.sleep(WATCHDOG_INTERVAL if interval is None else interval)


def execute_task(task_ref: Any, task_id: str, params: dict[str, Any], store: str) -> dict[str, Any]:
    """Run one task and return its row (the worker side; never raises for an error inside the task).

    Args:
        task_ref: the task's registered name, ``"module:function"``, or the function.
        task_id: the task's id.
        params: its parameters.
        store: the store's folder (for the task's context).
    """
    toyrobust_version, torch_version = _versions()
    start = time.perf_counter()
    task_name = task_ref if isinstance(task_ref, str) else getattr(task_ref, "name", str(task_ref))
    row: dict[str, Any] = {"task_id": task_id, "task": task_name, **params}
    try:
        task = resolve_task(task_ref)
        row["task"] = task.name
        result = task(dict(params), TaskContext(task_id, store))
        if not isinstance(result, Mapping):
            raise TypeError(f"task {task.name!r} must return a dict of result columns, got {type(result).__name__}")
        clash = sorted(set(result) & (set(RECORD_COLUMNS) - {"device"}))
        if clash:
            raise ValueError(f"task {task.name!r} returned reserved columns {clash}")
        device = result.get("device")
        row.update(result)
        row.update(status="ok", error=None)
    except Exception as err:  # noqa: BLE001 (a failing task is recorded, never allowed to stop the sweep)
        device = None
        tb = traceback.extract_tb(err.__traceback__)
        where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
        row.update(status="error", error=f"{type(err).__name__}: {err}{where}")
    if device is None:
        try:
            device = str(resolve_device(params.get("device")))
        except ValueError:
            device = str(params.get("device"))
    row.update(seed=params.get("seed"), toyrobust_version=toyrobust_version, torch_version=torch_version,
               device=str(device), wall_time=time.perf_counter() - start, host=socket.gethostname(),
               pid=os.getpid(), finished=datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    return row


def execute_chunk(task_ref: Any, items: list[tuple[str, dict[str, Any]]], store: str) -> list[dict[str, Any]]:
    """Run several tasks one after the other in this worker and return their rows (one submission, one round trip
    to the driver); a task that raises gives its own error row (see :func:`execute_task`), the others go on.

    Args:
        task_ref: the task's registered name, ``"module:function"``, or the function.
        items: ``(task id, parameters)`` of each task.
        store: the store's folder (for the tasks' context).
    """
    return [execute_task(task_ref, task_id, params, store) for task_id, params in items]


# ---------------------------------------------------------------------------------------------------- planning
def plan(grid: Mapping[str, Any], task: Any) -> tuple[SweepTask, dict[str, Any], list[TaskSpec]]:
    """Expand and check a sweep without running it: ``(task, canonical grid, tasks)``.

    Every task's configuration is checked (distribution, parameters, classifier and threat specs, ...): the
    first bad one raises ValueError naming its parameters. Runs on the driver before anything is submitted.
    """
    spec = resolve_task(task)
    norm = normalise_grid(grid)
    points = expand_grid(norm, spec.name)
    # "device" may be a parameter (where to run); the row then records the device actually used
    reserved = sorted({k for p in points for k in p.params} & (set(RECORD_COLUMNS) - {"device"}))
    if reserved:
        raise ValueError(f"grid: parameter names {reserved} are reserved for the record; rename them")
    checked: dict[str, None] = {}
    for point in points:
        if spec.check is not None and point.id not in checked:
            try:
                spec.check(dict(point.params))
            except (ValueError, TypeError, KeyError) as err:
                shown = ", ".join(f"{k}={v!r}" for k, v in point.params.items())
                msg = " ".join(str(err).split())
                raise ValueError(f"grid point ({shown}): {msg}") from None
            checked[point.id] = None
    tasks: list[TaskSpec] = []
    for point in points:
        if spec.expand is None:
            tasks.append(point)
            continue
        for params in spec.expand(dict(point.params)):
            tid = stable_hash({"task": spec.name, "params": params})
            tasks.append(TaskSpec(tid, spec.name, params))
    if len({t.id for t in tasks}) != len(tasks):
        raise ValueError("grid: two tasks have the same parameters")
    return spec, norm, tasks


def _task_ref(spec: SweepTask, task: Any) -> Any:
    """What is sent to workers: the registered name when the task is registered, else the function."""
    if isinstance(task, str):
        return task
    if spec.name in TASKS and TASKS.lookup(spec.name) is spec:
        return spec.name
    return spec.fn


def default_executor(max_workers: int | None = None, threads_per_worker: int | None = None) -> Executor:
    """A process pool with the spawn start method (torch and fork do not mix), one torch thread per core.

    Args:
        max_workers: worker processes (default: the number of CPUs); 0 runs the tasks in this process, one at
            a time (:class:`InProcessExecutor`).
        threads_per_worker: torch threads in each (default: CPUs // workers, at least 1).
    """
    cpus = os.cpu_count() or 1
    workers = cpus if max_workers is None else max_workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"max_workers must be an int >= 0 (0: in this process), got {max_workers!r}")
    if workers == 0:
        return InProcessExecutor()
    threads = threads_per_worker or max(1, cpus // workers)
    return WorkerPool(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                      initializer=_init_worker, initargs=(threads, os.getpid()))


@contextlib.contextmanager
def _sigint_blocked() -> Any:
    """SIGINT blocked in this thread for the duration (POSIX; elsewhere nothing): a process started meanwhile
    inherits the blocked mask, and a Ctrl-C arriving meanwhile is delivered when it ends, not lost."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class WorkerPool(ProcessPoolExecutor):
    """The default pool (see :func:`default_executor`): a spawn process pool whose workers ignore Ctrl-C, exit when
    the driver dies, and can be stopped at once (:meth:`terminate_workers`).

    A Ctrl-C at a terminal goes to every process of the foreground group, workers included. Their initializer
    ignores SIGINT, but it runs only after the worker has imported torch (seconds); workers are therefore started
    (the pool starts them in :meth:`submit`) with SIGINT blocked, a mask they inherit, until the initializer
    ignores it.
    """

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        with _sigint_blocked():
            return super().submit(fn, *args, **kwargs)

    def terminate_workers(self) -> None:
        """Stop every worker process now (SIGTERM), the tasks they run lost; then shut the pool down."""
        for proc in list((getattr(self, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                proc.terminate()
        self.shutdown(wait=False, cancel_futures=True)


class InProcessExecutor(Executor):
    """Runs each task in the calling process when it is submitted (``max_workers=0``: debugging, tiny sweeps)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 (handed to the caller through the future)
            fut.set_exception(err)
        return fut


def _is_dask_client(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "scheduler_info")


def _capacity(executor: Any, default_workers: int) -> int:
    if _is_dask_client(executor):
        try:
            return max(1, sum(executor.nthreads().values()))
        except Exception:  # noqa: BLE001 (a scheduler that cannot answer: use a modest window)
            return 8
    return getattr(executor, "_max_workers", default_workers) or default_workers


# ---------------------------------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class _RunOptions:
    """The options of :func:`sweep` that shape how the missing tasks run (see its arguments)."""

    progress: bool = True
    max_workers: int | None = None
    max_attempts: int = 3
    in_flight: int | None = None
    report: Callable[[dict[str, Any]], None] | None = None
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        attempts, chunk = self.max_attempts, self.chunk_size
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {attempts!r}")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f"chunk_size must be None (sized from the task times) or an int >= 1, got {chunk!r}")


def sweep(
    grid: Mapping[str, Any],
    task: Any,
    *,
    store: str | os.PathLike,
    executor: Any = None,
    resume: bool = True,
    retry_errors: bool = False,
    progress: bool = True,
    max_workers: int | None = None,
    max_attempts: int = 3,
    in_flight: int | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
    chunk_size: int | None = None,
) -> SweepResult:
    """Run every task of a parameter grid on an executor, one durable row per finished task in ``store``.

    The grid (see :mod:`toyrobust.sweeps.grid`) is expanded into tasks (a cartesian product of its list axes
    and zip groups; array axes stay inside one vectorised task; a task may split a point into shards), each
    task's configuration is checked, and the store is checked: a store written for another task, another grid
    or another toyrobust version is refused (ValueError naming the store and what differs) before any task
    runs. Then the tasks without a row run on ``executor`` and each row is written atomically as it finishes.

    Every row holds the task's parameters and results, ``status`` ("ok" or "error") and ``error``, the
    ``seed``, ``toyrobust_version``, ``torch_version``, ``device``, ``wall_time``, ``host``, ``pid`` and
    ``finished``. Read them with :func:`toyrobust.sweeps.load_results` (a pandas DataFrame).

    Args:
        grid: ``{name: values}``; lists are axes, scalars fixed, ``{"linspace": [a, b, n]}`` or numpy arrays
            are array axes, ``"zip"`` holds groups of lists that vary together.
        task: ``"risk"``, ``"estimate"``, ``"train"``, another registered name, ``"module:function"``, or a
            function ``fn(params) -> dict`` (importable by the workers, or picklable by value for Dask).
        store: the results folder (created if missing).
        executor: None (a spawn process pool of ``max_workers``, shut down at the end), any
            ``concurrent.futures.Executor``, or a Dask ``distributed.Client`` (tasks submitted with
            ``pure=False``; the scheduler reschedules tasks of dead workers).
        resume: continue a store holding rows of the same sweep; with False such a store is refused.
        retry_errors: rerun tasks whose row has status "error" (their row is replaced).
        progress: a tqdm bar on stderr.
        max_workers: workers of the default pool (default: CPU count; 0 runs the tasks in this process).
        max_attempts: times a task may lose its worker process (default pool) before it is recorded as an error.
        in_flight: most submissions (chunks of tasks) in flight at once (default: twice the executor's workers, at
            least 4).
        report: called with each row as it is written (after it is durable).
        chunk_size: tasks per submission: None (default) sizes the chunks from the tasks' measured wall times (see
            the module docstring); 1 submits every task alone; n > 1 submits chunks of n tasks.

    Returns:
        a :class:`SweepResult` (counts and the store; ``.frame()`` reads the rows).
    """
    start = time.perf_counter()
    options = _RunOptions(progress=progress, max_workers=max_workers, max_attempts=max_attempts,
                          in_flight=in_flight, report=report, chunk_size=chunk_size)
    spec, norm, tasks = plan(grid, task)
    st = Store(store)
    st.check_writable()  # before any task: a store that cannot be written would lose every row
    manifest = _manifest(spec, norm, tasks)
    old = st.check_compatible(manifest)
    st.lock()
    try:
        st.clean_temporary()
        done = st.row_ids() if old is not None else {}
        if done and not resume:
            raise ValueError(f"store {str(st.path)!r} already holds {len(done)} rows of this sweep; resume it "
                             f"(resume=True, or --resume on the command line) or choose another store")
        todo = [t for t in tasks if t.id not in done or (retry_errors and done[t.id] != "ok")]
        # with tasks to run, the manifest's fsync happens on the writer thread (before the first row), not here
        st.create(manifest, sync=not todo)
        result = SweepResult(str(st.path), len(tasks), skipped=len(tasks) - len(todo), task=spec.name)
        if todo:
            _Driver(spec, _task_ref(spec, task), st, executor, result, options).run(todo)
    finally:
        st.unlock()
    result.seconds = time.perf_counter() - start
    return result


def _manifest(spec: SweepTask, norm: dict[str, Any], tasks: list[TaskSpec]) -> dict[str, Any]:
    """The store's manifest of a sweep: its task, grid and tasks, and the versions that created it."""
    toyrobust_version, torch_version = _versions()
    return {"format": FORMAT, "task": spec.name, "grid": norm,
            "grid_hash": stable_hash({"task": spec.name, "grid": norm}, 64), "toyrobust_version": toyrobust_version,
            "torch_version_at_creation": torch_version,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tasks": len(tasks),
            "task_ids": [t.id for t in tasks]}


def _checked_executor(executor: Any) -> Any:
    if not (isinstance(executor, Executor) or _is_dask_client(executor) or hasattr(executor, "submit")):
        raise TypeError(f"executor must be a concurrent.futures.Executor or a dask distributed.Client, got "
                        f"{type(executor).__name__}")
    return executor


class _RowWriter:
    """A few threads writing finished rows in durable groups (:meth:`Store.write_rows`): a free thread takes every
    row queued so far, writes them, and posts ``("written", rows, error)`` on the driver's event queue (``error``
    None once the group is on the disk). Rows that arrive while a group is being synced go to the next free thread,
    so the last rows of a sweep do not wait for an earlier group's sync. After a failed write nothing more is
    written (the failure stops the sweep)."""

    def __init__(self, st: Store, events: queue.Queue) -> None:
        self.st, self.events = st, events
        self.todo: queue.SimpleQueue = queue.SimpleQueue()
        self.failed: BaseException | None = None
        self.created = False  # whether the store's manifest is known to be durable (Store.sync_created)
        self.create_lock = threading.Lock()
        # concurrent fdatasyncs share the file system's journal commits (one thread waits ~5-10 ms per sync on a
        # busy disk; a group of 16 synced by 8 threads costs well under 1 ms per row)
        self.sync = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="toyrobust-sweep-sync")
        self.threads = [threading.Thread(target=self._loop, name=f"toyrobust-sweep-store-{i}")
                        for i in range(WRITER_THREADS)]
        for thread in self.threads:
            thread.start()

    def put(self, rows: list[dict[str, Any]]) -> None:
        self.todo.put(rows)

    def close(self) -> None:
        """Write the rows queued so far, then stop the threads."""
        for _ in self.threads:
            self.todo.put(None)
        for thread in self.threads:
            thread.join()
        self.sync.shutdown(wait=True)

    def _loop(self) -> None:
        while True:
            batches = [self.todo.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batches.append(self.todo.get_nowait())
            rows = [row for batch in batches if batch is not None for row in batch]
            if rows:
                self._write(rows)
            stops = batches.count(None)
            for _ in range(stops - 1):  # another thread's stop signal, taken along with the rows
                self.todo.put(None)
            if stops:
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self.failed is not None:
            return
        try:
            with self.create_lock:
                if not self.created:  # the manifest is durable before any row
                    self.st.sync_created()
                    self.created = True
            self.st.write_rows(rows, sync=self.sync)
        except BaseException as err:  # noqa: BLE001 (handed to the driver, which stops the sweep)
            self.failed = err
            self.events.put(("written", rows, err))
            return
        self.events.put(("written", rows, None))


class _Driver:
    """Runs the missing tasks of one :func:`sweep` call: submits them to the executor in chunks (at most ``window``
    chunks in flight), hands each finished chunk's rows to the writer thread, counts the rows once they are durable,
    and rebuilds its own process pool when a worker process dies.

    Every event arrives on one queue: ``("task", future, None)`` from a chunk's future when it is done,
    ``("written", rows, error)`` from the writer when a group of rows is on the disk (or failed).
    """

    def __init__(self, spec: SweepTask, ref: Any, st: Store, executor: Any, result: SweepResult,
                 options: _RunOptions) -> None:
        self.spec, self.ref, self.st, self.result, self.options = spec, ref, st, result, options
        self.own = executor is None  # a pool made here is rebuilt when it breaks and shut down at the end
        self.executor = default_executor(options.max_workers) if self.own else _checked_executor(executor)
        self.dask = _is_dask_client(self.executor)
        self.capacity = self._capacity()
        self.window = self._window()
        self.store_path = str(st.path.resolve())
        self.bar = self._progress_bar() if options.progress else None
        self.done_q: queue.Queue = queue.Queue()
        self.pending: dict[Any, list[TaskSpec]] = {}
        self.attempts: dict[str, int] = {}
        self.alone: set[str] = set()  # tasks lost with a dead worker: resubmitted one per chunk
        # tasks of a chunk Dask gave up on (KilledWorker): each runs with nothing else in flight, so that a task
        # killed beside the culprit is not blamed with it
        self.isolated: set[str] = set()
        self.times: collections.deque[float] = collections.deque(maxlen=TIMING_WINDOW)  # recent task wall times
        self.waiting: list[TaskSpec] = []
        self.finished = self.breaks = self.writing = self.submitted = 0
        self.token = uuid.uuid4().hex[:8]  # makes this run's Dask keys unique
        self.writer = _RowWriter(st, self.done_q)

    def _capacity(self) -> int:
        if isinstance(self.executor, InProcessExecutor):
            return 1
        return _capacity(self.executor, self.options.max_workers or os.cpu_count() or 1)

    def _window(self) -> int:
        if isinstance(self.executor, InProcessExecutor):
            return 1  # submit() runs the task at once: one at a time
        return self.options.in_flight or max(4, 2 * self.capacity)

    def _progress_bar(self) -> Any:
        from tqdm.auto import tqdm  # an optional nicety, loaded only when a bar is shown

        return tqdm(total=self.result.total, initial=self.result.skipped, unit="task",
                    desc=f"sweep[{self.spec.name}]", file=sys.stderr, dynamic_ncols=True)

    # -------------------------------------------------------------------------------------------- the event loop
    def run(self, todo: list[TaskSpec]) -> None:
        """Run ``todo`` (in grid order) until every task has a durable row or could not run."""
        self.waiting = list(reversed(todo))  # pop() from the end keeps the grid order
        try:
            while self.waiting or self.pending or self.writing:
                self._fill_window()
                kind, item, error = self.done_q.get()
                if kind == "written":
                    self._on_written(item, error)
                else:
                    self._on_task_done(item)
        except BaseException:  # Ctrl-C (KeyboardInterrupt), a failed write, ...: stop the work in flight
            for f in self.pending:
                f.cancel()
            if self.own:
                if isinstance(self.executor, WorkerPool):
                    self.executor.terminate_workers()  # their tasks' results could no longer be recorded
                else:
                    self.executor.shutdown(wait=False, cancel_futures=True)
                self.own = False
            raise
        finally:
            self.writer.close()  # rows already computed are complete: let them reach the disk
            if self.bar is not None:
                self.bar.close()
            if self.own:
                self.executor.shutdown(wait=True)

    def _chunk_size(self) -> int:
        """Tasks in the next chunk (see the module docstring)."""
        if self.options.chunk_size is not None:
            return self.options.chunk_size
        if not self.times or isinstance(self.executor, InProcessExecutor):
            return 1  # nothing measured yet (or no round trip to save)
        per_task = max(statistics.median(self.times), 1e-6)
        balanced = -(-len(self.waiting) // (2 * self.capacity))  # ceil: every worker keeps work until the end
        return max(1, min(int(CHUNK_SECONDS / per_task), balanced, MAX_CHUNK))

    def _next_chunk(self) -> list[TaskSpec]:
        size = self._chunk_size()
        chunk = [self.waiting.pop()]
        if chunk[0].id in self.alone or chunk[0].id in self.isolated:
            return chunk
        while (self.waiting and len(chunk) < size and self.waiting[-1].id not in self.alone
               and self.waiting[-1].id not in self.isolated):
            chunk.append(self.waiting.pop())
        return chunk

    def _isolation_holds(self) -> bool:
        """Whether the next submission must wait: an isolated task is in flight, or is next and others are."""
        if not self.isolated:
            return False
        if any(c[0].id in self.isolated for c in self.pending.values()):
            return True
        return bool(self.pending) and self.waiting[-1].id in self.isolated

    def _fill_window(self) -> None:
        while self.waiting and len(self.pending) < self.window and not self._isolation_holds():
            chunk = self._next_chunk()
            try:
                self._submit(chunk)
            except BrokenProcessPool:
                for t in reversed(chunk):
                    self.waiting.append(t)
                    self.attempts[t.id] -= 1
                self.executor = _rebuild(self.executor, self.own, self.options.max_workers)

    def _submit(self, chunk: list[TaskSpec]) -> None:
        for t in chunk:
            self.attempts[t.id] = self.attempts.get(t.id, 0) + 1
        items = [(t.id, t.params) for t in chunk]
        self.submitted += 1
        if self.dask:
            key = f"toyrobust-{self.spec.name}-{chunk[0].id}-{len(chunk)}-{self.submitted}-{self.token}"
            fut = self.executor.submit(execute_chunk, self.ref, items, self.store_path, pure=False, key=key)
        else:
            fut = self.executor.submit(execute_chunk, self.ref, items, self.store_path)
        self.pending[fut] = chunk
        fut.add_done_callback(lambda f: self.done_q.put(("task", f, None)))

    # -------------------------------------------------------------------------------------------- task events
    def _on_task_done(self, fut: Any) -> None:
        chunk = self.pending.pop(fut, None)
        if chunk is None:  # a stale callback of a future already handled
            return
        try:
            rows = fut.result()
        except BrokenProcessPool:
            self._on_broken_pool(chunk)
            return
        except Exception as err:  # noqa: BLE001 (infrastructure failure: Dask's KilledWorker, pickling, ...)
            self._on_not_run(chunk, err)
            return
        self.times.extend(row["wall_time"] for row in rows if row.get("wall_time") is not None)
        self._record(rows)

    def _on_broken_pool(self, chunk: list[TaskSpec]) -> None:
        """A worker process died: every future of the pool fails; resubmit those tasks, one per chunk, on a new
        pool (a task that kills its worker then takes no other task down with it)."""
        lost = chunk + [t for f in list(self.pending) for t in self.pending.pop(f)]
        self.breaks += 1
        max_attempts = self.options.max_attempts
        if self.finished == 0 and self.breaks >= max_attempts:
            raise RuntimeError(f"the worker processes died {self.breaks} times before any task finished: they "
                               f"cannot start or import the task (is the calling script guarded by "
                               f"`if __name__ == '__main__':`?); nothing was recorded") from None
        self.executor = _rebuild(self.executor, self.own, self.options.max_workers)
        given_up = []
        for lt in reversed(lost):  # the waiting list is popped from its end: keep the grid order
            if self.attempts[lt.id] >= max_attempts:
                given_up.append(_lost_row(self.spec, lt, f"the worker process died {self.attempts[lt.id]} times "
                                                         f"while this task was in flight (BrokenProcessPool)"))
            else:
                self.alone.add(lt.id)
                self.waiting.append(lt)
        if given_up:
            self._record(given_up)

    def _on_not_run(self, chunk: list[TaskSpec], err: Exception) -> None:
        """The chunk's future failed outside the tasks (the tasks' own errors come back as rows)."""
        if self.dask and type(err).__name__ == "KilledWorker":
            if len(chunk) > 1 or chunk[0].id not in self.isolated:
                # which task killed the workers? each runs alone, with nothing else in flight, to find out
                for t in reversed(chunk):
                    self.isolated.add(t.id)
                    self.waiting.append(t)
                return
            # it ran with nothing beside it: it is the one that kills its workers
            self._record([_lost_row(self.spec, chunk[0], f"{type(err).__name__}: {err}")])
            return
        self.result.lost += len(chunk)
        for t in chunk:
            if len(self.result.error_messages) < 20:
                self.result.error_messages.append(f"{t.id}: not run: {type(err).__name__}: {err}")
        if self.bar is not None:
            self.bar.update(len(chunk))

    # -------------------------------------------------------------------------------------------- rows
    def _record(self, rows: list[dict[str, Any]]) -> None:
        """Hand finished rows to the writer thread."""
        self.finished += len(rows)
        self.writing += len(rows)
        for row in rows:
            row["attempts"] = self.attempts.get(row["task_id"], 1)
        self.writer.put(rows)

    def _on_written(self, rows: list[dict[str, Any]], error: BaseException | None) -> None:
        self.writing -= len(rows)
        if error is not None:  # a failed write (disk full, permissions) stops the sweep: nothing is half-written
            raise error
        result = self.result
        for row in rows:
            if row["status"] == "ok":
                result.ok += 1
            else:
                result.errors += 1
                if len(result.error_messages) < 20:
                    result.error_messages.append(f"{row['task_id']}: {row['error']}")
            if self.options.report is not None:
                self.options.report(row)
        if self.bar is not None:
            self.bar.update(len(rows))
            self.bar.set_postfix(errors=result.errors, refresh=False)


def _rebuild(executor: Any, own: bool, max_workers: int | None) -> Any:
    if not own:
        raise RuntimeError("the executor's worker processes died (BrokenProcessPool) and it was passed in, so it "
                           "cannot be rebuilt here; the finished rows are saved: resume the sweep")
    executor.shutdown(wait=False, cancel_futures=True)
    return default_executor(max_workers)


def _lost_row(spec: SweepTask, t: TaskSpec, message: str) -> dict[str, Any]:
    toyrobust_version, torch_version = _versions()
    return {"task_id": t.id, "task": spec.name, **t.params, "status": "error", "error": message,
            "seed": t.params.get("seed"), "toyrobust_version": toyrobust_version, "torch_version": torch_version,
            "device": None, "wall_time": None, "host": None, "pid": None,
            "finished": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
