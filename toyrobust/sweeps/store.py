"""The results store of a sweep: one JSON file per finished task, written atomically, merged on read.

Layout of a store folder::

    sweep.json            manifest: format, task, grid (canonical JSON), grid hash, toyrobust version, task count
    rows/<task id>.json   one row per finished task (status "ok" or "error")
    checkpoints/          files a task keeps inside the store (training checkpoints)
    .lock                 held (flock) by the one driver running the sweep

Rows are written in groups (:meth:`Store.write_rows`: the rows that finished while the previous group was being
written): each row goes to its own temporary file in ``rows/``; the data of every file of the group is flushed to
the disk (``fdatasync``, the group's files concurrently, so the file system commits them together); then each file
is renamed over its final name (``os.replace`` is atomic) and the folder is fsync'ed once for the whole group.
Only then are the group's rows counted, reported and shown as done. What this guarantees:

* a process killed at any moment (``kill -9`` of the driver or a worker, Ctrl-C, an out-of-memory kill): the
  rows are complete. A file appears under its final name only through the atomic rename, after its text is
  fully written, and whatever a process wrote is in the kernel's page cache, which outlives the process: for a
  process kill the syncs are not even needed. A kill leaves at most some ``.tmp-*`` files, which readers ignore
  and the next run removes;
* the machine losing power or crashing: every row that was counted, reported or shown as done is on the disk,
  because its data was flushed before its rename (so no renamed file can come back empty or cut) and the
  folder's fsync made the renames durable before anything was counted. Syncing the folder once per group
  instead of once per row gives up nothing: until a row is counted nobody has been told it exists, and a row of
  a group cut by the crash is either there in full or missing (its task reruns on resume).

Since the file name is the task id, a task has at most one row, whatever the number of kills and resumes. The
manifest is written atomically when the sweep starts and made durable (:meth:`Store.sync_created`) before the first
row is written, so a crash can never leave rows without the manifest that says what they belong to.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from .grid import canonical_json

__all__ = ["FORMAT", "Store", "load_results", "to_parquet"]

FORMAT = "toyrobust-sweep-1"
MANIFEST = "sweep.json"


def _fsync_dir(path: Path) -> None:
    # the rename itself is durable only once the folder's entry is on disk (POSIX); not possible on Windows
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_datasync = getattr(os, "fdatasync", os.fsync)  # the file's data and the metadata needed to read it (macOS: fsync)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_text(path: Path, text: str, *, sync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, os.replace) and, with ``sync``, durably
    (the file fsync'ed before the rename, the folder after it)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        _fsync_dir(path.parent)


class Store:
    """A sweep's results folder (see the module docstring).

    Args:
        path: the folder (created by :meth:`create`; reading a missing store gives no rows).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows_dir = self.path / "rows"
        self.checkpoints_dir = self.path / "checkpoints"
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------------------------------ manifest
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when the folder holds no sweep; ValueError when it is unreadable."""
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"store {str(self.path)!r}: {MANIFEST} is not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"store {str(self.path)!r}: {MANIFEST} is not a toyrobust sweep manifest "
                             f"(format {data.get('format') if isinstance(data, dict) else None!r}, "
                             f"expected {FORMAT!r})")
        return data

    def check_compatible(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """The existing manifest when it describes the same sweep; ValueError naming what differs otherwise.

        Same sweep: the same task, the same grid (hash of its canonical JSON) and the same toyrobust version.
        A folder that exists with files but no manifest is refused too (it is not a sweep's store).
        """
        old = self.manifest()
        if old is None:
            if self.path.exists() and any(p.name != ".lock" for p in self.path.iterdir()):
                raise ValueError(f"store {str(self.path)!r} exists and is not empty, but holds no {MANIFEST}: "
                                 f"not a sweep's store; choose another --store")
            return None
        diffs = []
        if old.get("task") != manifest["task"]:
            diffs.append(f"task {old.get('task')!r} there, {manifest['task']!r} here")
        if old.get("grid_hash") != manifest["grid_hash"]:
            diffs.append(_grid_difference(old.get("grid"), manifest["grid"]))
        if old.get("toyrobust_version") != manifest["toyrobust_version"]:
            diffs.append(f"written by toyrobust {old.get('toyrobust_version')}, this is toyrobust "
                         f"{manifest['toyrobust_version']}")
        if diffs:
            raise ValueError(f"store {str(self.path)!r} holds a different sweep ({'; '.join(diffs)}); refusing to "
                             f"mix results: choose another store, or delete it to start over")
        return old

    def check_writable(self) -> None:
        """ValueError (naming the store and the reason) unless the store can be created and written, checked by
        creating and removing a probe file (an existing store) or folder (in its nearest existing parent folder):
        permission bits do not say it for root, nor for read-only or virtual file systems like ``/proc``.
        Leaves nothing behind, creates no folder, runs no task."""
        path = self.path
        try:
            exists = path.exists()
        except OSError as err:
            raise ValueError(f"store {str(path)!r} cannot be read ({err.strerror or err}); choose another "
                             f"--store") from None
        if exists and not path.is_dir():
            raise ValueError(f"store {str(path)!r} is a file, not a folder; choose another --store")
        if exists:
            folders = [f for f in (path, self.rows_dir) if f.is_dir()]
        else:
            base = path.parent
            while not base.exists() and base != base.parent:
                base = base.parent
            if not base.is_dir():
                raise ValueError(f"store {str(path)!r} cannot be created: {str(base)!r} is a file, not a folder")
            folders = [base]
        for folder in folders:
            try:
                if exists:
                    fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
                    os.close(fd)
                    os.unlink(probe)
                else:
                    os.rmdir(tempfile.mkdtemp(prefix=".tmp-probe-", dir=folder))
            except OSError as err:
                what = "a file" if exists else "a folder"
                raise ValueError(f"store {str(path)!r} cannot be written: cannot create {what} in {str(folder)!r} "
                                 f"({err.strerror or err}); choose another --store") from None

    def create(self, manifest: dict[str, Any], *, sync: bool = True) -> None:
        """Create the folders and write the manifest (once; an existing compatible manifest is kept).

        With ``sync=False`` the manifest is written atomically but not yet made durable: it is complete for every
        process at once (a process kill cannot cut it), and :meth:`sync_created` makes it durable; the driver
        does so before it writes the first row, so a power loss can never leave rows without their manifest."""
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        if not self.manifest_path.exists():
            atomic_write_text(self.manifest_path, json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False),
                              sync=sync)

    def sync_created(self) -> None:
        """Make what :meth:`create` wrote durable: the manifest's data, and the entries of the manifest and
        ``rows/`` in the store's folder and of the store in its parent folder."""
        fd = os.open(self.manifest_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.path)
        _fsync_dir(self.path.parent)

    # ------------------------------------------------------------------------------------------ lock
    def lock(self) -> None:
        """Hold the store's lock (one driver per store); ValueError when another live process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # no flock (Windows): one driver per store is then the user's responsibility
            return
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ValueError(f"store {str(self.path)!r} is in use by another running sweep (its .lock is held); "
                             f"wait for it or choose another store") from None
        self._lock_fd = fd  # released by unlock() or, if this process is killed, by the kernel

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock`."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------------------------------ rows
    def clean_temporary(self) -> int:
        """Remove ``.tmp-*`` files left by a killed writer; returns how many (call with the lock held)."""
        removed = 0
        for folder in (self.path, self.rows_dir):
            if folder.is_dir():
                for p in folder.glob(".tmp-*"):
                    with contextlib.suppress(OSError):
                        p.unlink()
                        removed += 1
        return removed

    def write_row(self, row: dict[str, Any]) -> None:
        """Write one task's row durably (replaces a previous row of the same task id)."""
        self.write_rows([row])

    def write_rows(self, rows: list[dict[str, Any]], *, sync: Executor | None = None) -> None:
        """Write several tasks' rows durably as one group (see the module docstring): each to a temporary file,
        every file's data flushed (fdatasync; concurrently on ``sync``, a thread pool, when given), each renamed
        over its final name ``rows/<task id>.json`` (replacing a previous row of that task), then one fsync of
        the folder. When this returns every row of the group is on the disk; when it raises (disk full, the
        store removed) none of the group's temporary files is left, though some rows may already be in place."""
        if not rows:
            return
        fds: list[int] = []  # open temporary files (closed once synced)
        temps: list[tuple[str, Path]] = []  # (temporary file, final name) not yet renamed
        try:
            for row in rows:
                data = json.dumps(row, sort_keys=True, allow_nan=True, default=_json_default).encode("utf-8")
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.rows_dir)
                fds.append(fd)
                temps.append((tmp, self.rows_dir / f"{row['task_id']}.json"))
                _write_all(fd, data)
            if sync is not None and len(fds) > 1:
                list(sync.map(_datasync, fds))
            else:
                for fd in fds:
                    _datasync(fd)
            while fds:
                os.close(fds.pop())
            while temps:
                os.replace(*temps[-1])
                temps.pop()
        except BaseException:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            for tmp, _ in temps:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
        _fsync_dir(self.rows_dir)

    def row_ids(self) -> dict[str, str]:
        """``{task id: status}`` of the rows on disk (reads every row; cheap for thousands)."""
        return {row["task_id"]: row.get("status", "ok") for row in self.iter_rows()}

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """The rows on disk, in task-id order (temporary files skipped)."""
        if not self.rows_dir.is_dir():
            return
        for p in sorted(self.rows_dir.glob("*.json")):
            if p.name.startswith("."):
                continue
            try:
                with open(p, encoding="utf-8") as handle:
                    row = json.load(handle)
            except (OSError, ValueError) as err:
                # only a crash of the whole machine before the fsync can leave this; the task reruns on resume
                warnings.warn(f"store {str(self.path)!r}: skipping the unreadable row {p.name} ({err})", stacklevel=2)
                continue
            if isinstance(row, dict) and "task_id" in row:
                yield row

    def rows(self) -> list[dict[str, Any]]:
        """All rows as a list of dicts."""
        return list(self.iter_rows())

    def frame(self, *, explode: bool = False) -> Any:
        """The rows as a pandas DataFrame, ordered as the grid expands (see :func:`load_results`)."""
        return load_results(self.path, explode=explode)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _grid_difference(old: Any, new: Any) -> str:
    """A short description of how two canonical grids differ."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return "a different grid"
    parts = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            parts.append(f"{key!r} only there")
        elif key not in old:
            parts.append(f"{key!r} only here")
        elif canonical_json(old[key]) != canonical_json(new[key]):
            a, b = canonical_json(old[key]), canonical_json(new[key])
            a = a if len(a) <= 60 else a[:57] + "..."
            b = b if len(b) <= 60 else b[:57] + "..."
            parts.append(f"{key} = {a} there, {b} here")
    return "grid differs: " + ", ".join(parts) if parts else "a different grid"


def load_results(store: str | os.PathLike, *, explode: bool = False) -> Any:
    """The rows of a sweep's store as a pandas DataFrame, one row per finished task, in grid order.

    Columns: ``task_id``, ``task``, ``status`` ("ok" or "error"), ``error``, the task's parameters, its results,
    and the record ``seed``, ``toyrobust_version``, ``torch_version``, ``device``, ``wall_time`` (seconds),
    ``host``, ``pid``, ``finished`` (UTC, ISO 8601).

    Args:
        store: the store's folder.
        explode: expand vectorised rows (list-valued columns of one length, e.g. a closed-form risk over a
            10^6-point axis) into one DataFrame row per point.
    """
    import pandas as pd

    st = Store(store)
    manifest = st.manifest()
    if manifest is None:
        raise ValueError(f"store {str(st.path)!r} holds no sweep ({MANIFEST} missing)")
    rows = st.rows()
    order = {tid: i for i, tid in enumerate(manifest.get("task_ids", []))}
    rows.sort(key=lambda r: order.get(r["task_id"], len(order)))
    df = pd.DataFrame(rows)
    if explode and len(df):
        listy = [c for c in df.columns if df[c].map(lambda v: isinstance(v, list)).any()]
        if listy:
            df = df.explode(listy, ignore_index=True)
            for c in listy:
                with contextlib.suppress(ValueError, TypeError):
                    df[c] = pd.to_numeric(df[c])
    return df


def to_parquet(store: str | os.PathLike, path: str | os.PathLike, *, explode: bool = False) -> Any:
    """Write a store's rows to one Parquet file (pyarrow), e.g. to share or archive a finished sweep.

    Args:
        store: the store's folder.
        path: the Parquet file to write (atomically: a temporary file in its folder, then renamed).
        explode: one Parquet row per point of vectorised rows (see :func:`load_results`).

    Returns:
        the DataFrame that was written.
    """
    df = load_results(store, explode=explode)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=target.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, engine="pyarrow", index=False)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return df
