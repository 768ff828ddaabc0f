"""``toyrobust sweep CONFIG``: run a sweep described in a TOML file, with a progress bar and a summary table.

A config file::

    task = "estimate"                 # risk | estimate | train | module:function
    store = "tsipras-estimate.store"  # optional (relative to the config's folder); --store overrides it

    [grid]
    dist = "tsipras"
    p = 0.9
    eta = 3
    classifier = ["bayes", "robust"]
    threat = ["linf:0.5", "linf:1.5"]
    n = 200000
    shards = 4
    seed = 0

Bad configurations (an unknown distribution or task, a parameter outside its domain, a spec that does not
parse, a store of another sweep, a store that cannot be written) are reported in one line with exit status 2
before any task runs. The exit status is 0 when every task has an "ok" row, 1 when some task failed or could not
run; a sweep stopped by Ctrl-C (SIGINT) or SIGTERM prints one line (the rows stored, and that ``--resume``
continues it) and exits with 130 or 143.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .. import __version__
from ..clibase import COMMANDS, UsageError, UsageParser
from .grid import stable_hash
from .runner import RECORD_COLUMNS, plan, sweep
from .store import FORMAT, Store
from .tasks import merge_shards

__all__ = ["ConfigError", "add_parser", "cmd_sweep", "load_config", "main", "format_summary"]

_TOP_KEYS = {"task", "store", "grid", "retry_errors", "max_attempts", "description"}


class ConfigError(ValueError):
    """A bad sweep configuration or command line (turned into the command line's one-line usage error)."""


def _usage_error(args: argparse.Namespace | None = None) -> type[Exception]:
    """The exception class the command line prints as one line: the one given to :func:`add_parser`, else
    :class:`toyrobust.clibase.UsageError`."""
    return getattr(args, "usage_error", None) or UsageError


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked contents of a sweep config file: ``task``, ``grid``, ``store`` (resolved) and options."""
    path = Path(path)
    try:
        data = _read_toml(path)
    except FileNotFoundError:
        raise ConfigError(f"config {str(path)!r} not found") from None
    except OSError as err:
        raise ConfigError(f"config {str(path)!r}: {err}") from None
    except ValueError as err:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"config {str(path)!r} is not valid TOML: {err}") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"config {str(path)!r}: unknown keys {unknown}; allowed: {sorted(_TOP_KEYS)}")
    if not isinstance(data.get("task"), str):
        raise ConfigError(f"config {str(path)!r}: needs task = 'risk' | 'estimate' | 'train' | 'module:function'")
    if not isinstance(data.get("grid"), dict):
        raise ConfigError(f"config {str(path)!r}: needs a [grid] table")
    store = data.get("store")
    data["store"] = None if store is None else str((path.parent / store) if not Path(store).is_absolute() else store)
    return data


def add_parser(subparsers: Any, usage_error: type[Exception] | None = None) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to the ``toyrobust`` command line's subparsers; returns its parser.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
        usage_error: the exception class the command line prints as one line with exit status 2 (default:
            :class:`toyrobust.clibase.UsageError`, which ``toyrobust.cli`` re-exports).
    """
    parser = subparsers.add_parser(
        "sweep", help=COMMANDS["sweep"],
        description="Run the sweep described in CONFIG (TOML: task and [grid]) on a local process pool, or on a "
                    "Dask cluster with --scheduler, writing one row per finished task to the store (atomic files; "
                    "a killed sweep resumed with --resume runs only the missing tasks). Prints a progress bar on "
                    "stderr and a summary table at the end. Exit status: 0 all tasks ok, 1 some task failed, "
                    "2 bad configuration or unwritable store (nothing run), 130/143 stopped by Ctrl-C/SIGTERM "
                    "(--resume continues).",
        epilog="example: toyrobust sweep examples/sweeps/tsipras_estimate.toml --workers 2; read the rows with "
               "toyrobust.sweeps.load_results(STORE)")
    parser.add_argument("config", metavar="CONFIG", help="a TOML file: task = ..., store = ..., [grid]")
    parser.add_argument("--store", default=None, metavar="PATH",
                        help="results folder (default: the config's store, else CONFIG with .store)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a Dask scheduler address (tcp://host:8786); default: a local process pool")
    parser.add_argument("--resume", action="store_true", help="continue a store holding rows of this sweep")
    parser.add_argument("--retry-errors", action="store_true", help="with --resume, rerun tasks that failed")
    parser.add_argument("--workers", type=int, default=None, metavar="N", help="local worker processes "
                        "(default: CPU count; 0 runs the tasks in this process)")
    parser.add_argument("--chunk-size", type=int, default=None, metavar="N", help="tasks per submission to a "
                        "worker (default: sized from the measured task times, about 75 ms of work per chunk)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true", help="check the config and the store, list the task "
                        "count, run nothing")
    parser.set_defaults(func=cmd_sweep, usage_error=usage_error)
    return parser


def cmd_sweep(args: argparse.Namespace) -> int:
    """The ``toyrobust sweep`` command (argparse namespace from :func:`add_parser`); returns the exit status.

    Ctrl-C (SIGINT) or SIGTERM stop the sweep: the workers are stopped, the rows being written reach the disk, and
    one line says how many rows the store holds and that ``--resume`` continues; exit status 128 + the signal's
    number (130, 143), as a shell reports a process ended by it.
    """
    seen: dict[str, Any] = {}
    try:
        with _terminate_as_interrupt():
            return _run(args, seen)
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        with _signals_ignored():  # a second Ctrl-C while the line is written must not print a traceback
            sys.stderr.write(_interrupted_line(signal.Signals(signum).name, seen) + "\n")
            sys.stderr.flush()
        return 128 + int(signum)


def _run(args: argparse.Namespace, seen: dict[str, Any]) -> int:
    """:func:`cmd_sweep` without its signal handling; ``seen`` receives the store and the task count."""
    usage = _usage_error(args)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        raise usage(str(err)) from None
    store = args.store or config["store"] or str(Path(args.config).with_suffix(".store"))
    if args.workers is not None and args.workers < 0:
        raise usage(f"--workers must be >= 0 (0: run the tasks in this process), got {args.workers}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise usage(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if args.scheduler is not None and args.workers is not None:
        raise usage("--workers sets the local pool; with --scheduler the cluster decides")
    try:
        spec, norm, tasks = plan(config["grid"], config["task"])
        st = Store(store)
        seen["store"] = store
        st.check_writable()  # before any task, and for --dry-run too
        seen["tasks"] = len(tasks)
        probe = {"format": FORMAT, "task": spec.name, "grid": norm,
                 "grid_hash": stable_hash({"task": spec.name, "grid": norm}, 64),
                 "toyrobust_version": __version__}
        old = st.check_compatible(probe)
        have = len(st.row_ids()) if old is not None else 0
    except (ValueError, TypeError) as err:
        raise usage(f"{args.config}: {' '.join(str(err).split())}") from None
    if have and not args.resume:
        raise usage(f"store {store!r} already holds {have} of {len(tasks)} rows of this sweep; pass --resume to run "
                    f"the missing tasks, or choose another --store")
    if args.dry_run:
        sys.stdout.write(f"{len(tasks)} tasks ({spec.name}); {have} already in {store}\n")
        return 0
    client = None
    if args.scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise usage("--scheduler needs Dask: pip install 'toyrobust[sweep]'") from None
        try:
            client = Client(args.scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as err:
            raise usage(f"--scheduler {args.scheduler!r}: cannot connect ({err})") from None
    try:
        result = sweep(config["grid"], config["task"], store=store, executor=client, resume=True,
                       retry_errors=args.retry_errors or bool(config.get("retry_errors", False)),
                       progress=not args.no_progress, max_workers=args.workers,
                       max_attempts=int(config.get("max_attempts", 3)), chunk_size=args.chunk_size)
    except (ValueError, TypeError) as err:
        raise usage(" ".join(str(err).split())) from None
    except OSError as err:  # a row that could not be written (disk full, store removed): the sweep stops there
        sys.stderr.write(f"toyrobust: error: the sweep stopped: {' '.join(str(err).split())}; the rows written so "
                         f"far are kept: fix the cause and run the same command with --resume\n")
        return 1
    finally:
        if client is not None:
            client.close()
    sys.stdout.write(format_summary(result) + "\n")
    return 0 if result.complete and result.errors == 0 and _store_errors(result) == 0 else 1


class _Terminated(KeyboardInterrupt):
    """SIGTERM (or another stop signal) turned into an interrupt, so the sweep stops as it does on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Any:
    """SIGTERM raises :class:`_Terminated` (a KeyboardInterrupt) in the main thread for the duration (elsewhere,
    e.g. in a thread, nothing changes)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _signals_ignored() -> Any:
    """SIGINT and SIGTERM ignored for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _interrupted_line(name: str, seen: dict[str, Any]) -> str:
    """The one line printed when a sweep is interrupted: the rows stored, and how to continue."""
    store = seen.get("store")
    if store is None:
        return f"toyrobust: sweep interrupted ({name}) before it started; nothing was stored"
    try:
        rows = len(Store(store).row_ids())
    except (OSError, ValueError):
        rows = 0
    of = f" of {seen['tasks']}" if "tasks" in seen else ""
    return (f"toyrobust: sweep interrupted ({name}): {rows}{of} rows are stored in {store}; run the same command "
            f"with --resume to continue")


def _store_errors(result: Any) -> int:
    return sum(status != "ok" for status in Store(result.store).row_ids().values())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.6g}"
    if isinstance(value, list):
        nums = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len(value):
            return f"{min(nums):.4g} .. {max(nums):.4g}"
        return f"[{len(value)} values]"
    return "-" if value is None else str(value)


def format_summary(result: Any, max_rows: int = 40) -> str:
    """The end-of-sweep report: counts, then a table of the rows (shards merged for ``estimate``)."""
    lines = [f"sweep {result.task!r} in {result.store}: {result.total} tasks; this run: {result.ok} ok, "
             f"{result.errors} failed, {result.lost} not run; {result.skipped} already done; "
             f"{result.seconds:.1f} s"]
    manifest = Store(result.store).manifest() or {}
    df = result.frame()
    if not len(df):
        return "\n".join(lines)
    grid = manifest.get("grid", {})
    varying = [k for k, v in grid.items() if isinstance(v, list) and k != "zip"]
    for group in grid.get("zip", []):
        varying += list(group)
    if result.task == "estimate" and "estimate_id" in df.columns:
        df = merge_shards(df)
        shown = ["k", "n", "value", "ci_low", "ci_high"]
    elif result.task == "risk":
        shown = ["value", "points"] if "points" in df.columns else ["value"]
    elif result.task == "train":
        shown = [c for c in ("risk", "adv_risk", "steps_done", "train_time") if c in df.columns]
    else:
        shown = [c for c in df.columns if c not in RECORD_COLUMNS and c not in grid and c not in ("seed",)][:4]
    cols = [c for c in varying if c in df.columns] + ["status"] + [c for c in shown if c in df.columns]
    if "error" in df.columns and (df["status"] != "ok").any():
        cols.append("error")
    table = [[_fmt(v) for v in rec] for rec in df[cols].head(max_rows).itertuples(index=False)]
    table = [[c if len(c) <= 60 else c[:57] + "..." for c in row] for row in table]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(cols)]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in table]
    if len(df) > max_rows:
        lines.append(f"... {len(df) - max_rows} more rows: toyrobust.sweeps.load_results({result.store!r})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m toyrobust.sweeps CONFIG [options]``: the sweep command without the main command line."""
    parser = UsageParser(prog="toyrobust")
    sub = parser.add_subparsers(dest="command", parser_class=UsageParser)
    add_parser(sub)
    try:
        args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
        return args.func(args)
    except UsageError as err:
        sys.stderr.write(f"toyrobust: error: {err}\n")
        return 2
