"""Parameter grids: expansion into tasks, canonical JSON, and deterministic task ids.

A grid is a mapping ``name -> values``:

* a list (or tuple) is an axis: one task per value, axes combined as a cartesian product;
* any other value (a number, a string, a bool) is fixed for every task;
* an *array axis* is one parameter holding many points, evaluated by ONE vectorised task (the closed-form
  ``risk`` task): a numpy array, or a table ``{"linspace": [start, stop, num]}``, ``{"logspace": [...]}``,
  ``{"geomspace": [...]}``, ``{"arange": [start, stop, step]}`` or ``{"array": [v1, v2, ...]}``;
* the key ``"zip"`` holds a list of groups ``{name: list, ...}`` whose lists have one length and vary together
  (one task per position), each group combined with the other axes as a cartesian product.

Task ids are the first 20 hex digits of the SHA-256 of the canonical JSON of ``{"task": name, "params": ...}``
(keys sorted, floats in shortest round-trip form): the same parameters always give the same id, on any machine,
so a resumed sweep recognises the tasks it has already finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ARRAY_KINDS", "TaskSpec", "canonical", "canonical_json", "expand_grid", "is_array_spec",
           "materialise", "stable_hash"]

#: the tables that describe an array axis, with the numpy function that materialises each
ARRAY_KINDS = {"linspace": np.linspace, "logspace": np.logspace, "geomspace": np.geomspace, "arange": np.arange,
               "array": np.asarray}


@dataclass(frozen=True)
class TaskSpec:
    """One task of a sweep: its id, the task's name and its parameters (canonical JSON values)."""

    id: str
    task: str
    params: dict[str, Any]


def is_array_spec(value: Any) -> bool:
    """Whether ``value`` (canonical form) describes an array axis: a one-key table named in :data:`ARRAY_KINDS`."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ARRAY_KINDS


def materialise(value: Any) -> np.ndarray:
    """The float array an array-axis table describes (see the module docstring)."""
    (kind, args), = value.items()
    if kind == "array":
        return np.asarray(args, dtype=float).ravel()
    return np.asarray(ARRAY_KINDS[kind](*args), dtype=float).ravel()


def canonical(value: Any, where: str = "grid") -> Any:
    """``value`` as plain JSON data (numpy scalars and arrays converted), or TypeError naming ``where``.

    Floats must be finite (NaN breaks equality, so a NaN parameter could never be recognised as done).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{where}: parameters must be finite numbers, got {value!r}")
        return value
    if isinstance(value, np.ndarray):
        return {"array": [canonical(v, where) for v in value.ravel().tolist()]}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = canonical(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: expected numbers, strings, bools, lists or tables, got {type(value).__name__} "
                    f"{value!r}")


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the text that is hashed (``repr`` of floats is the shortest round trip)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_hash(value: Any, length: int = 20) -> str:
    """The first ``length`` hex digits of the SHA-256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def _check_array_spec(name: str, value: dict) -> None:
    (kind, args), = value.items()
    if not isinstance(args, list) or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"grid: array axis {name!r} = {{{kind} = {args!r}}} must list numbers")
    if kind in ("linspace", "logspace", "geomspace") and (len(args) != 3 or args[2] != int(args[2]) or args[2] < 1):
        raise ValueError(f"grid: array axis {name!r} = {{{kind} = {args!r}}} must be [start, stop, num] with "
                         f"an integer num >= 1")
    if kind == "arange" and len(args) not in (1, 2, 3):
        raise ValueError(f"grid: array axis {name!r} = {{arange = {args!r}}} must be [stop], [start, stop] or "
                         f"[start, stop, step]")
    if kind == "array" and not args:
        raise ValueError(f"grid: array axis {name!r} is empty")


def normalise_grid(grid: Mapping[str, Any]) -> dict[str, Any]:
    """The grid in canonical JSON form (checked): what the store's manifest records and hashes."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping of parameter name -> values, got {type(grid).__name__}")
    out = canonical(dict(grid))
    zips = out.pop("zip", [])
    if isinstance(zips, dict):
        zips = [zips]
    if not isinstance(zips, list) or not all(isinstance(g, dict) for g in zips):
        raise TypeError(f"grid: 'zip' must be a list of tables name -> list, got {zips!r}")
    seen: set[str] = set(out)
    for i, group in enumerate(zips):
        if not group:
            raise ValueError(f"grid: zip group {i} is empty")
        lengths = set()
        for name, values in group.items():
            if name in seen:
                raise ValueError(f"grid: parameter {name!r} appears twice (in a zip group and elsewhere)")
            seen.add(name)
            if not isinstance(values, list):
                raise TypeError(f"grid: zip group {i}: {name!r} must be a list, got {values!r}")
            lengths.add(len(values))
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"grid: zip group {i} needs lists of one non-zero length, got lengths "
                             f"{ {k: len(v) for k, v in group.items()} }")
    for name, value in out.items():
        if isinstance(value, list) and not value:
            raise ValueError(f"grid: axis {name!r} is an empty list (it would give no task)")
        if isinstance(value, dict):
            if not is_array_spec(value):
                raise ValueError(f"grid: {name!r} = {value!r} is a table but not an array axis; use one of "
                                 f"{', '.join('{' + k + ' = [...]}' for k in ARRAY_KINDS)}")
            _check_array_spec(name, value)
    if zips:
        out["zip"] = zips
    return out


def expand_grid(grid: Mapping[str, Any], task: str) -> list[TaskSpec]:
    """The tasks of a grid, in a deterministic order (axes in the grid's order, last axis fastest).

    Args:
        grid: see the module docstring.
        task: the task's name (part of every id).

    Returns:
        one :class:`TaskSpec` per combination; duplicate combinations are an error.
    """
    norm = normalise_grid(grid)
    zips = norm.pop("zip", [])
    fixed = {k: v for k, v in norm.items() if not isinstance(v, list)}
    axes = [(k, v) for k, v in norm.items() if isinstance(v, list)]
    factors: list[list[dict[str, Any]]] = [[{name: v} for v in values] for name, values in axes]
    for group in zips:
        names = list(group)
        factors.append([dict(zip(names, vals)) for vals in zip(*(group[n] for n in names))])
    specs, seen = [], {}
    for combo in itertools.product(*factors):
        params = dict(fixed)
        for part in combo:
            params.update(part)
        tid = stable_hash({"task": task, "params": params})
        if tid in seen:
            raise ValueError(f"grid: the combination {params} appears twice")
        seen[tid] = True
        specs.append(TaskSpec(tid, task, params))
    return specs
