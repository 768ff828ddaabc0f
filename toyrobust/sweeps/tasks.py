"""The tasks a sweep can run, by name: ``risk`` (closed form), ``estimate`` (Monte Carlo shards), ``train``.

A task is a function ``fn(params) -> dict`` of one grid point's parameters (plain JSON values) returning the
row's result columns; it may also take a keyword ``context`` (a :class:`TaskContext`: the task id and the
store's folder, e.g. for a checkpoint). Tasks are registered by name with :func:`register_task`, with an
optional ``check(params)`` run on the driver before any task starts (raise ValueError for a bad configuration)
and an optional ``expand(params) -> list of params`` that splits one grid point into several tasks (the
Monte Carlo shards).

Distributions, classifiers and threat models are given as the command line's specs and parsed by its spec parsers
(:func:`toyrobust.clispecs.make_distribution`, :func:`~toyrobust.clispecs.make_classifier`,
:func:`~toyrobust.clispecs.make_threat_spec`): ``dist = "tsipras"`` with the distribution's parameters as further
grid keys (``p = 0.9``, ``eta = [1, 2, 3]``), ``classifier = "bayes"`` / ``"robust"`` / ``"linear:1,0:0.5"``,
``threat = "linf:0.3"``.

References:
    C. J. Clopper, E. S. Pearson, Biometrika 26(4), 1934 (the exact interval of merged shards).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..attacks import ATTACKS, make_attack
from ..clibase import UsageError
from ..clispecs import DISTRIBUTIONS, make_classifier, make_distribution, make_threat_spec
from ..constraints import is_symbolic
from ..definitions import check_definition
from ..models import MLP, LinearModel, QuadraticNet
from ..montecarlo import RiskEstimate, clopper_pearson, estimate_risk
from ..registry import Registry
from ..risks import find_risk, risk, risk_function
from ..training import train
from .grid import is_array_spec, materialise, stable_hash

__all__ = ["SweepTask", "TaskContext", "TASKS", "register_task", "resolve_task", "merge_estimates", "merge_shards",
           "shard_offset", "shard_sizes"]


@dataclass(frozen=True)
class TaskContext:
    """What a running task may know besides its parameters.

    Attributes:
        task_id: the task's id (a hash of its parameters).
        store: the store's folder (shared with the driver only on one machine or a shared file system).
    """

    task_id: str
    store: str

    @property
    def checkpoint_dir(self) -> str:
        """``<store>/checkpoints``: where a task keeps files that must survive a crash."""
        return os.path.join(self.store, "checkpoints")


@dataclass(frozen=True)
class SweepTask:
    """A registered task: its function, its pre-run check and its expansion (see the module docstring)."""

    name: str
    fn: Callable[..., dict[str, Any]]
    check: Callable[[dict[str, Any]], None] | None = None
    expand: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    description: str = ""

    def __call__(self, params: dict[str, Any], context: TaskContext | None = None) -> dict[str, Any]:
        if context is not None and _takes_context(self.fn):
            return self.fn(params, context=context)
        return self.fn(params)


def _takes_context(fn: Callable) -> bool:
    try:
        return "context" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


#: the registered tasks by name (looked up case-insensitively)
TASKS: Registry[SweepTask] = Registry("sweep task")


def register_task(name: str, fn: Callable | None = None, *, check: Callable | None = None,
                  expand: Callable | None = None, description: str = "", replace: bool = False) -> Any:
    """Register ``fn`` as the sweep task ``name`` (usable as a decorator).

    A task registered in a script's ``__main__`` is unknown to spawned worker processes; register it in an
    importable module, or pass the function itself (or ``"module:function"``) to :func:`toyrobust.sweep`.

    Args:
        name: the task's name (as written in a TOML config).
        fn: ``fn(params) -> dict`` (optionally with a keyword ``context``).
        check: ``check(params)`` raising ValueError for a bad grid point, run on the driver before any task.
        expand: ``expand(params) -> list of params``: several tasks for one grid point.
        description: one line for listings.
        replace: replace a task registered under ``name`` by another function (without it: ValueError; the same
            function registered again, e.g. by a reloaded module, replaces its old entry).
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"name must be a non-empty string without ':', got {name!r}")

    def decorator(f: Callable) -> Callable:
        task = SweepTask(name, f, check, expand, description or (f.__doc__ or "").strip().split("\n")[0])
        old = TASKS.get(TASKS.canonical(name))
        TASKS.register(name, task, replace=replace or (old is not None and _same_function(old.fn, f)))
        return f

    return decorator if fn is None else decorator(fn)


def _same_function(a: Callable, b: Callable) -> bool:
    """The same function, or the same one defined again (its module re-imported)."""
    def key(f: Callable) -> tuple[Any, Any]:
        return getattr(f, "__module__", None), getattr(f, "__qualname__", None)

    return a is b or (None not in key(a) and key(a) == key(b))


def resolve_task(task: Any) -> SweepTask:
    """A :class:`SweepTask` from a registered name, a ``"module:function"`` path, a SweepTask or a function."""
    if isinstance(task, SweepTask):
        return task
    if isinstance(task, str):
        if task in TASKS:
            return TASKS.lookup(task)
        if ":" in task:
            module, _, attr = task.partition(":")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise ValueError(f"task {task!r}: cannot import {attr!r} from {module!r} ({err})") from None
            return resolve_task(obj) if not callable(obj) or isinstance(obj, SweepTask) else \
                SweepTask(task, obj, getattr(obj, "check", None), getattr(obj, "expand", None))
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(sorted(TASKS))} or give 'module:function'")
    if callable(task):
        name = f"{getattr(task, '__module__', '?')}:{getattr(task, '__qualname__', type(task).__name__)}"
        return SweepTask(name, task, getattr(task, "check", None), getattr(task, "expand", None))
    raise TypeError(f"task must be a task name, 'module:function' or a function, got {type(task).__name__}")


# ---------------------------------------------------------------------------------------------------- specs
#: grid keys that are not distribution parameters, per built-in task
RISK_KEYS = frozenset({"dist", "classifier", "threat", "coords", "definition"})
ESTIMATE_KEYS = RISK_KEYS | {"n", "shards", "seed", "attack", "attack_options", "level", "device", "dtype",
                             "chunk_size", "shard", "n_total"}
TRAIN_KEYS = frozenset({"dist", "model", "steps", "batch_size", "lr", "optimizer", "schedule", "adversarial",
                        "threat", "coords", "seed", "device", "eval_n", "eval_every", "checkpoint_every"})


def _spec_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number or a symbol name, got {value!r}")
    if isinstance(value, list):
        return ",".join(_spec_text(name, v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


@functools.lru_cache(maxsize=128)
def _dist_and_classifier(name: str, items: tuple[str, ...], classifier: str | None) -> tuple[Any, Any]:
    """A distribution and a classifier from their specs, remembered for the driver's checks (:func:`build` with
    ``cached=True``): a grid's points share most specs (a spec that fails is not remembered)."""
    dist = make_distribution(name, list(items))
    return dist, make_classifier(classifier, dist) if classifier is not None else None


@functools.lru_cache(maxsize=1024)
def _threat(threat: str | None, coords: str | None) -> Any:
    return make_threat_spec(threat, coords)


def build(params: Mapping[str, Any], task_keys: Iterable[str], symbols: Iterable[str] = (),
          *, need_classifier: bool = True, cached: bool = False) -> tuple[Any, Any, Any]:
    """``(dist, classifier, threat)`` from a grid point's specs (ValueError for a bad spec or parameter).

    Keys outside ``task_keys`` are the distribution's parameters; names in ``symbols`` (array axes) become
    sympy symbols where they are distribution parameters. ``cached=True`` (the checks run on the driver) reuses
    the objects built for the same specs before: only for reading them, never for running a task.
    """
    keys, symbols = set(task_keys), set(symbols)
    name = params.get("dist")
    if not isinstance(name, str):
        raise ValueError(f"dist must name a distribution ({', '.join(DISTRIBUTIONS)}), got {name!r}")
    allowed = DISTRIBUTIONS[name][1] if name in DISTRIBUTIONS else {}
    items = []
    for key, value in params.items():
        if key in keys or (key in symbols and key not in allowed):
            continue
        items.append(f"{key}={key if key in symbols else _spec_text(key, value)}")
    threat_spec, coords = params.get("threat"), params.get("coords")
    specs = (str(params.get("classifier", "bayes")) if need_classifier else None,
             None if threat_spec in (None, "", "none") else str(threat_spec), None if coords is None else str(coords))
    try:
        if cached:
            return (*_dist_and_classifier(name, tuple(items), specs[0]), _threat(specs[1], specs[2]))
        dist = make_distribution(name, items)
        clf = make_classifier(specs[0], dist) if need_classifier else None
        threat = make_threat_spec(specs[1], specs[2])
    except UsageError as err:
        raise ValueError(str(err)) from None
    return dist, clf, threat


def _definition(params: Mapping[str, Any]) -> str:
    return check_definition(params.get("definition", "ball"))


def _int_param(params: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------------- risk
def _check_risk(params: dict[str, Any]) -> None:
    arrays = [k for k, v in params.items() if is_array_spec(v)]
    dist, clf, threat = build(params, RISK_KEYS, arrays, cached=True)
    definition = _definition(params)
    try:
        find_risk(dist, clf, threat, definition)
    except NotImplementedError as err:
        raise ValueError(" ".join(str(err).split())) from None


def risk_task(params: dict[str, Any]) -> dict[str, Any]:
    """Closed-form risk (``tr.risk``); array axes are evaluated at once by ``tr.risk_function``.

    Without array axes the row holds ``value``, ``log_value`` and ``method``. With array axes (names that are
    symbols of the specs: a distribution parameter, or the eps of ``threat = "linf:eps"``), the risk is
    evaluated on their cartesian product in one vectorised call, and the row holds the flattened coordinates
    under each axis's name, ``value`` and ``log_value`` as lists, and ``points``.
    """
    arrays = {k: materialise(v) for k, v in params.items() if is_array_spec(v)}
    dist, clf, threat = build(params, RISK_KEYS, arrays)
    definition = _definition(params)
    if not arrays:
        result = risk(dist, clf, threat, definition)
        if result.value is None:
            raise ValueError(f"the risk is symbolic ({result.expr}); give each symbol an array axis in the grid")
        return {"value": result.value, "log_value": result.log_value, "method": result.method}
    fn = risk_function(dist, clf, threat, definition, log=True)
    names = [str(s) for s in fn.symbols]
    missing = sorted(set(names) - set(arrays))
    unused = sorted(set(arrays) - set(names))
    if missing:
        raise ValueError(f"the risk depends on the symbols {missing}, which have no array axis in the grid")
    if unused:
        raise ValueError(f"array axes {unused} are not symbols of this risk (its symbols: {names})")
    order = list(arrays)
    mesh = np.meshgrid(*[arrays[k] for k in order], indexing="ij")
    flat = {k: m.ravel() for k, m in zip(order, mesh)}
    log_value = np.asarray(fn(*[flat[n] for n in names]), dtype=float)
    out: dict[str, Any] = dict(flat)
    out.update(value=np.exp(log_value), log_value=log_value, points=int(log_value.size),
               method="closed form (vectorised, tr.risk_function)")
    return out


register_task("risk", risk_task, check=_check_risk,
              description="closed-form risk; array axes evaluated in one vectorised call")


# ---------------------------------------------------------------------------------------------------- estimate
def shard_sizes(n: int, shards: int) -> list[int]:
    """``n`` points split into ``shards`` near-equal parts (the first ``n % shards`` parts one larger)."""
    return [n // shards + (1 if i < n % shards else 0) for i in range(shards)]


def shard_offset(n: int, shards: int, shard: int) -> int:
    """Index of the first point of ``shard`` in the seed's stream: the sizes of the shards before it.

    Every shard draws from the one stream of the sweep's seed (``tr.estimate_risk(..., seed=seed, offset=...)``),
    so the shards together attack exactly the points of one ``tr.estimate_risk(..., n=n, seed=seed)`` run: with a
    deterministic attack (or none) their counts add up to that run's count, and each shard is reproducible alone.
    """
    return sum(shard_sizes(n, shards)[:shard])


def _estimate_common(params: Mapping[str, Any]) -> tuple[int, int, int]:
    n = _int_param(params, "n_total" if "n_total" in params else "n", 100_000, 1)
    shards = _int_param(params, "shards", 1, 1)
    seed = _int_param(params, "seed", 0, 0)
    if shards > n:
        raise ValueError(f"shards must be <= n, got shards={shards}, n={n}")
    level = params.get("level", 0.95)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    return n, shards, seed


def _check_estimate(params: dict[str, Any]) -> None:
    _estimate_common(params)
    dist, _, threat = build(params, ESTIMATE_KEYS, cached=True)
    _definition(params)
    if dist.is_symbolic:
        raise ValueError(f"estimate needs numeric parameters, got {dist!r}")
    if threat is not None and is_symbolic(threat.eps):
        raise ValueError(f"estimate needs a numeric eps, got threat {params.get('threat')!r}")
    attack = params.get("attack")
    if attack is not None and str(attack) not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS.listing(aliases=True)}, got {attack!r}")
    if attack is not None and threat is None:
        raise ValueError(f"attack={attack!r} needs a threat")
    options = params.get("attack_options")
    if options is not None:
        if attack is None:
            raise ValueError(f"attack_options={options!r} needs attack= (the attack they configure)")
        make_attack(str(attack), options)  # the attack's own constructor validates its options, before any task


def _expand_estimate(params: dict[str, Any]) -> list[dict[str, Any]]:
    n, shards, _ = _estimate_common(params)
    base = {k: v for k, v in params.items() if k != "n"}
    return [{**base, "n": m, "shard": i, "shards": shards, "n_total": n} for i, m in enumerate(shard_sizes(n, shards))]


def estimate_id(params: Mapping[str, Any]) -> str:
    """The id shared by the shards of one estimate (a hash of its parameters without the shard's)."""
    return stable_hash({k: v for k, v in params.items() if k not in ("n", "shard")})


def estimate_task(params: dict[str, Any]) -> dict[str, Any]:
    """One shard of a Monte Carlo estimate (``tr.estimate_risk`` with the shard's size and seed).

    The row holds the shard's counts ``k`` (adversarial points) and ``n`` (points), its own Clopper-Pearson
    interval, its ``offset`` in the seed's stream, and ``estimate_id`` (shared by the shards that
    :func:`merge_estimates` adds up into one exact interval).
    """
    n_total, shards, seed = _estimate_common(params)
    shard = _int_param(params, "shard", 0, 0)
    n = _int_param(params, "n", n_total, 1)
    dist, clf, threat = build(params, ESTIMATE_KEYS)
    offset = shard_offset(n_total, shards, shard)
    kwargs: dict[str, Any] = {}
    if "chunk_size" in params:
        kwargs["chunk_size"] = _int_param(params, "chunk_size", 0, 1)
    if "dtype" in params:
        kwargs["dtype"] = {"float32": torch.float32, "float64": torch.float64}[str(params["dtype"])]
    if params.get("attack_options") is not None:
        kwargs["attack_options"] = dict(params["attack_options"])
    est = estimate_risk(dist, clf, threat, _definition(params), attack=params.get("attack"), n=n, seed=seed,
                        offset=offset, device=params.get("device"), level=float(params.get("level", 0.95)),
                        progress=False, **kwargs)
    return {"k": est.k, "n": est.n, "value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high,
            "level": est.level, "method": est.method, "offset": offset, "device": est.device, "dtype": est.dtype,
            "seconds": est.seconds, "grad_evals": est.grad_evals, "invalid_claims": est.invalid_claims,
            "chunk_size": est.chunk_size, "estimate_id": estimate_id(params)}


register_task("estimate", estimate_task, check=_check_estimate, expand=_expand_estimate,
              description="Monte Carlo estimate, split into shards (disjoint ranges of the seed's stream)")


def _records(rows: Any) -> list[dict[str, Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        return [{k: v for k, v in r.items() if not _is_missing(v)} for r in rows.to_dict("records")]
    if isinstance(rows, Mapping):
        return [dict(rows)]
    return [dict(r) for r in rows]


def _is_missing(value: Any) -> bool:
    return isinstance(value, float) and value != value


def merge_estimates(rows: Any) -> Any:
    """The shards of one Monte Carlo estimate merged into one :class:`~toyrobust.RiskEstimate`.

    ``k = sum_i k_i`` and ``n = sum_i n_i`` over the shards, and the interval is the exact (Clopper-Pearson)
    interval of ``(k, n)`` at the shards' level: the shards are disjoint ranges of one stream of the same experiment,
    so their counts add up to one binomial count (that of a single run over all the points).

    Args:
        rows: the rows of the shards (a DataFrame or dicts, e.g. ``df[df.estimate_id == i]``): every shard
            ``0 .. shards - 1`` exactly once, all with status "ok".

    Returns:
        a :class:`~toyrobust.RiskEstimate` (``seed`` is the master seed; ``seconds`` the summed shard times).
    """
    recs = _records(rows)
    if not recs:
        raise ValueError("rows must hold at least one shard, got none")
    ids = {r.get("estimate_id") for r in recs}
    if len(ids) != 1 or None in ids:
        raise ValueError(f"rows must be the shards of ONE estimate (one estimate_id), got {len(ids)} ids; "
                         f"use merge_shards for a whole sweep")
    bad = [r.get("task_id") for r in recs if r.get("status", "ok") != "ok"]
    if bad:
        raise ValueError(f"shards {bad} did not finish (status error); rerun the sweep with retry_errors=True")
    shards = int(recs[0].get("shards", 1))
    seen = sorted(int(r.get("shard", 0)) for r in recs)
    if seen != list(range(shards)):
        raise ValueError(f"rows must hold shards 0..{shards - 1} once each, got {seen}")
    levels = {float(r["level"]) for r in recs}
    if len(levels) != 1:
        raise ValueError(f"the shards were estimated at different levels {sorted(levels)}")
    k, n = sum(int(r["k"]) for r in recs), sum(int(r["n"]) for r in recs)
    if "n_total" in recs[0] and n != int(recs[0]["n_total"]):
        raise ValueError(f"the shards hold n = {n} points, expected n_total = {recs[0]['n_total']}")
    level = levels.pop()
    low, high = clopper_pearson(k, n, level)
    first = recs[0]
    return RiskEstimate(
        value=k / n, ci_low=low, ci_high=high, k=k, n=n, level=level, method=str(first.get("method")),
        definition=str(first.get("definition", "ball")), threat=first.get("threat"),
        seconds=float(sum(float(r.get("seconds", 0.0)) for r in recs)), device=str(first.get("device")),
        dtype=str(first.get("dtype")), seed=int(first.get("seed", 0)), chunk_size=int(first.get("chunk_size", 0)),
        grad_evals=sum(int(r.get("grad_evals", 0)) for r in recs),
        invalid_claims=sum(int(r.get("invalid_claims", 0)) for r in recs))


_SHARD_COLUMNS = ("task_id", "shard", "offset", "n", "k", "value", "ci_low", "ci_high", "seconds", "wall_time",
                  "pid", "host", "finished", "error", "status", "grad_evals", "invalid_claims")


def merge_shards(frame: Any) -> Any:
    """One DataFrame row per estimate of an ``estimate`` sweep's results, shards merged (see merge_estimates).

    Columns: the grid parameters, ``k``, ``n``, ``value``, ``ci_low``, ``ci_high`` (exact, from the summed
    counts), ``shards_done`` and ``status`` ("ok", "incomplete" when shards are missing, "error" when one failed).
    """
    import pandas as pd

    out = []
    for eid, group in frame.groupby("estimate_id", sort=False):
        first = {k: v for k, v in group.iloc[0].to_dict().items() if k not in _SHARD_COLUMNS and not _is_missing(v)}
        rec = dict(first)
        rec["estimate_id"] = eid
        rec["shards_done"] = len(group)
        try:
            est = merge_estimates(group)
        except ValueError as err:
            failed = (group.get("status", pd.Series(dtype=str)) != "ok").any()
            rec.update(status="error" if failed else "incomplete", error=str(err))
        else:
            rec.update(status="ok", k=est.k, n=est.n, value=est.value, ci_low=est.ci_low, ci_high=est.ci_high,
                       seconds=est.seconds)
        out.append(rec)
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------------- train
MODEL_SPECS = "linear | mlp:H1,H2,... | quadratic:H"


def _make_model(spec: str, dim: Any, seed: int) -> Any:
    head, _, rest = str(spec).strip().partition(":")
    try:
        if head == "linear" and not rest:
            return LinearModel(int(dim))
        if head == "mlp" and rest:
            return MLP(int(dim), tuple(int(h) for h in rest.split(",")), seed=seed)
        if head == "quadratic" and rest:
            return QuadraticNet(int(dim), int(rest), seed=seed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model {spec!r}: {err}") from None
    raise ValueError(f"model {spec!r} not understood; expected {MODEL_SPECS}")


def _check_train(params: dict[str, Any]) -> None:
    dist, _, threat = build(params, TRAIN_KEYS, need_classifier=False, cached=True)
    if dist.is_symbolic:
        raise ValueError(f"train needs numeric parameters, got {dist!r}")
    _make_model(params.get("model", "linear"), dist.dim, 0)
    _int_param(params, "steps", 0, 0)
    _int_param(params, "seed", 0, 0)
    adversarial = params.get("adversarial")
    if adversarial not in (None, "none", "pgd", "closed-form"):
        raise ValueError(f"adversarial must be 'none', 'pgd' or 'closed-form', got {adversarial!r}")
    if adversarial not in (None, "none") and threat is None:
        raise ValueError(f"adversarial={adversarial!r} needs a threat")


def train_task(params: dict[str, Any], *, context: TaskContext | None = None) -> dict[str, Any]:
    """A training run (``tr.train``) with its checkpoint at ``<store>/checkpoints/<task id>.pt``.

    A task interrupted by a crash resumes from its checkpoint when the sweep is resumed. The row holds the final
    evaluation record (``risk``, ``adv_risk``; ``w`` and ``b`` for a linear model), the steps and the times.
    """
    dist, _, threat = build(params, TRAIN_KEYS, need_classifier=False)
    seed = _int_param(params, "seed", 0, 0)
    model = _make_model(params.get("model", "linear"), dist.dim, seed)
    adversarial = params.get("adversarial")
    checkpoint = None
    if context is not None:
        os.makedirs(context.checkpoint_dir, exist_ok=True)
        checkpoint = os.path.join(context.checkpoint_dir, f"{context.task_id}.pt")
    options = {k: params[k] for k in ("batch_size", "lr", "optimizer", "schedule", "eval_n", "eval_every",
                                      "checkpoint_every") if k in params}
    result = train(model, dist, steps=_int_param(params, "steps", 0, 0), threat=threat, seed=seed,
                   adversarial=None if adversarial in (None, "none") else adversarial, device=params.get("device"),
                   checkpoint=checkpoint, progress=False, **options)
    last = dict(result.history[-1]) if result.history else {}
    last.pop("step", None)
    device = next((str(p.device) for p in model.parameters()), "cpu")
    return {**last, "steps_done": result.steps, "start_step": result.start_step, "train_time": result.train_time,
            "samples_per_second": result.samples_per_second, "checkpoint": result.checkpoint, "device": device}


register_task("train", train_task, check=_check_train, description="a training run with a checkpoint in the store")
